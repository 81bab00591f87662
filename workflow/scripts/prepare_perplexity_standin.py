import logging
import sys

from cft.retention.perplexity import write_standin_corpus

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    write_standin_corpus(snakemake.output[0], snakemake.params.split)
