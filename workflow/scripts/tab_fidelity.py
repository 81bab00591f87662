import sys

from cft.evaluation.fidelity import fidelity_tables

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    fidelity_tables(
        list(snakemake.input.prompts),
        snakemake.output.prompts,
        snakemake.output.summary,
        samples_jsonls=list(snakemake.input.samples),
        test_sets=list(snakemake.input.test_sets),
        n_boot=snakemake.params.bootstrap,
        seed=snakemake.params.seed,
    )
