from cft.devices import bind_gpus
from cft.jobs import log_to, variant_job
from cft.transfer.openended import OpenEndedSettings, evaluate_openended

if __name__ == "__main__":
    log_to(snakemake.log[0])
    # On a machine with several GPUs, this job's own devices, before anything starts CUDA.
    bind_gpus(snakemake.resources.gpu)
    settings = dict(snakemake.params.settings)
    settings.pop("case_studies")  # read by the figure rule only
    evaluate_openended(
        **variant_job(snakemake),
        adapter_dir=snakemake.input.get("adapter"),
        settings=OpenEndedSettings(**{**settings, "thresholds": tuple(settings["thresholds"])}),
        prompts_csv=snakemake.output.prompts,
        samples_jsonl=snakemake.output.samples,
    )
