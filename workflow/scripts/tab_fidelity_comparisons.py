from cft.evaluation.comparisons import comparison_table
from cft.jobs import log_to

if __name__ == "__main__":
    log_to(snakemake.log[0])
    comparison_table(snakemake.input[0], snakemake.output[0], variants=snakemake.params.variants,
                     methods=snakemake.params.methods, n_boot=snakemake.params.bootstrap,
                     seed=snakemake.params.seed)
