import sys

from cft.transfer.noveltybench import noveltybench_table

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    noveltybench_table(list(snakemake.input), snakemake.output[0])
