from cft.baselines.temperature import fit_global_temperature
from cft.devices import bind_gpus
from cft.jobs import log_to

if __name__ == "__main__":
    log_to(snakemake.log[0])
    # On a machine with several GPUs, this job's own devices, before anything starts CUDA.
    bind_gpus(snakemake.resources.gpu)
    fit_global_temperature(
        model_record_path=snakemake.input.model,
        prompts_path=snakemake.input.prompts,
        settings=snakemake.params.settings,
        out_json=snakemake.output.temperature,
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
