import logging
import sys

from cft.transfer.noveltybench import evaluate_noveltybench

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    evaluate_noveltybench(
        generations_path=snakemake.input.generations,
        model_record_path=snakemake.input.model,
        classifier=snakemake.params.classifier,
        reward=snakemake.params.reward,
        patience=snakemake.params.patience,
        partitions_path=snakemake.output.partitions,
        scores_path=snakemake.output.scores,
        summary_path=snakemake.output.summary,
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
