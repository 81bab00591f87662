from cft.devices import bind_gpus
from cft.jobs import log_to, variant_job
from cft.retention.evaluate import evaluate_perplexity

if __name__ == "__main__":
    log_to(snakemake.log[0])
    # On a machine with several GPUs, this job's own devices, before anything starts CUDA.
    bind_gpus(snakemake.resources.gpu)
    evaluate_perplexity(
        **variant_job(snakemake),
        root=snakemake.params.root,
        settings=snakemake.params.settings,
        stand_in=snakemake.params.stand_in,
        slices_csv=snakemake.output[0],
    )
