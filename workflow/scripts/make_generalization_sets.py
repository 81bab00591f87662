from cft.evaluation.generalization import write_generalization_sets
from cft.jobs import log_to

if __name__ == "__main__":
    log_to(snakemake.log[0])
    data = snakemake.params.data
    write_generalization_sets(
        train_prompts=snakemake.input[0],
        out_paths=dict(zip(snakemake.params.groups, snakemake.output)),
        train_families=data["train_families"],
        heldout_families=data["heldout_families"],
        prompts_per_family=snakemake.params.prompts_per_family,
        seed=snakemake.params.seed,
        target=snakemake.params.target,
    )
