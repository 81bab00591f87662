from cft.devices import bind_gpus
from cft.jobs import log_to
from cft.transfer.noveltybench import evaluate_noveltybench

if __name__ == "__main__":
    log_to(snakemake.log[0])
    # On a machine with several GPUs, this job's own devices, before anything starts CUDA.
    bind_gpus(snakemake.resources.gpu)
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
