import logging
import sys

from cft.retention.evaluate import prepare_tinybench_items

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    prepare_tinybench_items(snakemake.params.settings, snakemake.output[0])
