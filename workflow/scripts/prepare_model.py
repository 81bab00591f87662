from cft.jobs import log_to
from cft.models import prepare_model

if __name__ == "__main__":
    log_to(snakemake.log[0])
    prepare_model(snakemake.params.model, cache_dir=snakemake.params.cache_dir, out_path=snakemake.output[0])
