from cft.devices import bind_gpus
from cft.jobs import log_to, variant_job
from cft.transfer.mcq import McqSettings, evaluate_mcq

if __name__ == "__main__":
    log_to(snakemake.log[0])
    # On a machine with several GPUs, this job's own devices, before anything starts CUDA.
    bind_gpus(snakemake.resources.gpu)
    evaluate_mcq(
        **variant_job(snakemake),
        adapter_dir=snakemake.input.get("adapter"),
        settings=McqSettings(**snakemake.params.settings),
        generations_jsonl=snakemake.output.generations,
        summary_json=snakemake.output.summary,
    )
