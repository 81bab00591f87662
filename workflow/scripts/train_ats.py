from cft.baselines.ats import train_ats
from cft.devices import bind_gpus
from cft.jobs import log_to

if __name__ == "__main__":
    log_to(snakemake.log[0])
    # On a machine with several GPUs, this job's own devices, before anything starts CUDA.
    bind_gpus(snakemake.resources.gpu)
    train_ats(
        model_record_path=snakemake.input.model,
        loss=snakemake.params.loss,
        prompts_path=snakemake.input.prompts,
        settings=snakemake.params.settings,
        head_out=snakemake.output.head,
        record_out=snakemake.output.record,
        log_csv=snakemake.output.log_csv,
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
