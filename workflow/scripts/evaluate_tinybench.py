import logging
import sys

from cft.retention.evaluate import evaluate_tinybench

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    evaluate_tinybench(
        model_record_path=snakemake.input.model,
        variant_files=dict(snakemake.input),
        variant=snakemake.wildcards.variant,
        items_path=snakemake.input.task_items,
        settings=snakemake.params.settings,
        tasks_csv=snakemake.output.tasks,
        examples_jsonl=snakemake.output.examples,
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
