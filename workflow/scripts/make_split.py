import sys

from cft.datasets import write_split

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    data = snakemake.params.data
    write_split(
        split=snakemake.wildcards.split,
        out_path=snakemake.output[0],
        train_families=data["train_families"],
        heldout_families=data["heldout_families"],
        selection=data["selection"],
        decimals=snakemake.params.decimals,
        max_bins=snakemake.params.max_bins,
        quantile_low=data["quantile_low"],
        quantile_high=data["quantile_high"],
    )
