import logging
import sys

from cft.retention.evaluate import evaluate_perplexity

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    evaluate_perplexity(
        model_record_path=snakemake.input.model,
        variant_files=dict(snakemake.input),
        variant=snakemake.wildcards.variant,
        root=snakemake.params.root,
        settings=snakemake.params.settings,
        stand_in=snakemake.params.stand_in,
        slices_csv=snakemake.output[0],
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
