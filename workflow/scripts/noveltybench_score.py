from cft.jobs import start_model_job, torch_threads
from cft.transfer.noveltybench import evaluate_noveltybench

if __name__ == "__main__":
    start_model_job(snakemake)
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
        threads=torch_threads(snakemake),
    )
