import sys

from cft.models import prepare_model

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    prepare_model(snakemake.params.model, cache_dir=snakemake.params.cache_dir, out_path=snakemake.output[0])
