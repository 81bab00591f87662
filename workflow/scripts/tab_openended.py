import sys

from cft.transfer.openended import openended_tables

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    openended_tables(list(snakemake.input), snakemake.output.prompts, snakemake.output.summary)
