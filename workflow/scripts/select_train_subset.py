import sys

from cft.datasets import write_train_subset

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    write_train_subset(
        snakemake.input[0], snakemake.output[0], size=snakemake.params.size, seed=snakemake.params.seed
    )
