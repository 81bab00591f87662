from cft.evaluation.generalization import generalization_table
from cft.jobs import log_to

if __name__ == "__main__":
    log_to(snakemake.log[0])
    generalization_table(list(snakemake.input), snakemake.output[0], variants=snakemake.params.variants,
                         methods=snakemake.params.methods, n_boot=snakemake.params.bootstrap,
                         seed=snakemake.params.seed)
