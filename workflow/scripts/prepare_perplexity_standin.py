from cft.jobs import log_to
from cft.retention.perplexity import write_standin_corpus

if __name__ == "__main__":
    log_to(snakemake.log[0])
    write_standin_corpus(snakemake.output[0], snakemake.params.split)
