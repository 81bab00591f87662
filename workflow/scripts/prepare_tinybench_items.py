from cft.jobs import log_to
from cft.retention.evaluate import prepare_tinybench_items

if __name__ == "__main__":
    log_to(snakemake.log[0])
    prepare_tinybench_items(snakemake.params.settings, snakemake.output[0])
