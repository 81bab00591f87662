import sys

from cft.transfer.choices import choices_table

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    choices_table(list(snakemake.input), snakemake.output[0])
