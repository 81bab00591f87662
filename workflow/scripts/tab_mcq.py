import sys

from cft.transfer.mcq import mcq_table

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    mcq_table(list(snakemake.input), snakemake.output[0])
