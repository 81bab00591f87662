from cft.evaluation.curve import curve_table
from cft.jobs import log_to

if __name__ == "__main__":
    log_to(snakemake.log[0])
    curve_table(list(snakemake.input.prompts), list(snakemake.input.steps), snakemake.input.fidelity,
                snakemake.output[0], n_boot=snakemake.params.bootstrap, seed=snakemake.params.seed)
