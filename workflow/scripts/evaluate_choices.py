import logging
import sys

from cft.transfer.choices import evaluate_choices

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    evaluate_choices(
        model_record_path=snakemake.input.model,
        adapter_dir=snakemake.input.get("adapter"),
        variant=snakemake.wildcards.variant,
        categories=snakemake.params.categories,
        out_csv=snakemake.output[0],
        device=snakemake.params.device,
        threads=snakemake.threads,
        variant_files=snakemake.input,
    )
