from cft.jobs import start_model_job, variant_job
from cft.transfer.openended import OpenEndedSettings, evaluate_openended

if __name__ == "__main__":
    start_model_job(snakemake)
    settings = dict(snakemake.params.settings)
    settings.pop("case_studies")  # read by the figure rule only
    evaluate_openended(
        **variant_job(snakemake),
        adapter_dir=snakemake.input.get("adapter"),
        settings=OpenEndedSettings(**{**settings, "thresholds": tuple(settings["thresholds"])}),
        prompts_csv=snakemake.output.prompts,
        samples_jsonl=snakemake.output.samples,
    )
