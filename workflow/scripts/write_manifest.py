from cft.jobs import log_to
from cft.provenance import write_manifest

if __name__ == "__main__":
    log_to(snakemake.log[0])
    write_manifest(
        config=snakemake.config,
        model_records=list(snakemake.input.models),
        datasets=list(snakemake.input.datasets),
        tables=list(snakemake.input.tables),
        out_path=snakemake.output[0],
        cores=snakemake.params.cores,
        repo=snakemake.params.repo,
    )
