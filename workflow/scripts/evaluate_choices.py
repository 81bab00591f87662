from cft.devices import bind_gpus
from cft.jobs import log_to, variant_job
from cft.transfer.choices import evaluate_choices

if __name__ == "__main__":
    log_to(snakemake.log[0])
    # On a machine with several GPUs, this job's own devices, before anything starts CUDA.
    bind_gpus(snakemake.resources.gpu)
    evaluate_choices(
        **variant_job(snakemake),
        adapter_dir=snakemake.input.get("adapter"),
        categories=snakemake.params.categories,
        out_csv=snakemake.output[0],
    )
