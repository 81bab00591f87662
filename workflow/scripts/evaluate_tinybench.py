from cft.devices import bind_gpus
from cft.jobs import log_to, variant_job
from cft.retention.evaluate import evaluate_tinybench

if __name__ == "__main__":
    log_to(snakemake.log[0])
    # On a machine with several GPUs, this job's own devices, before anything starts CUDA.
    bind_gpus(snakemake.resources.gpu)
    evaluate_tinybench(
        **variant_job(snakemake),
        items_path=snakemake.input.task_items,
        settings=snakemake.params.settings,
        tasks_csv=snakemake.output.tasks,
        examples_jsonl=snakemake.output.examples,
    )
