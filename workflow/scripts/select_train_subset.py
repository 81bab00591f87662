from cft.datasets import write_train_subset
from cft.jobs import log_to

if __name__ == "__main__":
    log_to(snakemake.log[0])
    write_train_subset(
        snakemake.input[0], snakemake.output[0], size=snakemake.params.size, seed=snakemake.params.seed
    )
