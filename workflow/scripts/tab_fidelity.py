import sys

from cft.evaluation.fidelity import fidelity_tables

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    fidelity_tables(
        list(snakemake.input),
        snakemake.output.prompts,
        snakemake.output.summary,
        n_boot=snakemake.params.bootstrap,
        seed=snakemake.params.seed,
    )
