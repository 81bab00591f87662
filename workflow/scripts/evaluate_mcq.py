import logging
import sys

from cft.transfer.mcq import McqSettings, evaluate_mcq

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    evaluate_mcq(
        model_record_path=snakemake.input.model,
        adapter_dir=snakemake.input.get("adapter"),
        variant=snakemake.wildcards.variant,
        settings=McqSettings(**snakemake.params.settings),
        generations_jsonl=snakemake.output.generations,
        summary_json=snakemake.output.summary,
        device=snakemake.params.device,
        threads=snakemake.threads,
        variant_files=snakemake.input,
    )
