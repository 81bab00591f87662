import logging
import sys

from cft.transfer.openended import OpenEndedSettings, evaluate_openended

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    settings = dict(snakemake.params.settings)
    settings.pop("case_studies")  # read by the figure rule only
    evaluate_openended(
        model_record_path=snakemake.input.model,
        adapter_dir=snakemake.input.get("adapter"),
        variant=snakemake.wildcards.variant,
        settings=OpenEndedSettings(**{**settings, "thresholds": tuple(settings["thresholds"])}),
        prompts_csv=snakemake.output.prompts,
        samples_jsonl=snakemake.output.samples,
        device=snakemake.params.device,
        threads=snakemake.threads,
        variant_files=snakemake.input,
    )
