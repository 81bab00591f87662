from cft.datasets import write_split
from cft.jobs import log_to

if __name__ == "__main__":
    log_to(snakemake.log[0])
    data = snakemake.params.data
    write_split(
        split=snakemake.wildcards.split,
        out_path=snakemake.output[0],
        train_families=data["train_families"],
        heldout_families=data["heldout_families"],
        selection=data["selection"],
        target=snakemake.params.target,
    )
