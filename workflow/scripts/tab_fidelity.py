from cft.evaluation.fidelity import fidelity_tables
from cft.jobs import log_to

if __name__ == "__main__":
    log_to(snakemake.log[0])
    fidelity_tables(
        list(snakemake.input.prompts),
        snakemake.output.prompts,
        snakemake.output.summary,
        samples_jsonls=list(snakemake.input.samples),
        test_sets=list(snakemake.input.test_sets),
        n_boot=snakemake.params.bootstrap,
        seed=snakemake.params.seed,
    )
