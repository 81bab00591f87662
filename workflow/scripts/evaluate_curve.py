from cft.evaluation.curve import evaluate_curve
from cft.evaluation.fidelity import FidelitySettings
from cft.jobs import start_model_job, torch_threads

if __name__ == "__main__":
    start_model_job(snakemake)
    evaluate_curve(
        model_record_path=snakemake.input.model,
        snapshots_dir=snakemake.input.snapshots,
        adapter_dir=snakemake.input.adapter,
        variant=snakemake.wildcards.method,
        test_sets=dict(zip(snakemake.params.splits, snakemake.input.test_sets)),
        settings=FidelitySettings(**snakemake.params.settings),
        train_log_csv=snakemake.input.train_log,
        prompts_csv=snakemake.output.prompts,
        steps_csv=snakemake.output.steps,
        device=snakemake.params.device,
        threads=torch_threads(snakemake),
    )
