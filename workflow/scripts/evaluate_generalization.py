from cft.evaluation.fidelity import FidelitySettings
from cft.evaluation.generalization import evaluate_generalization
from cft.jobs import start_model_job, variant_job

if __name__ == "__main__":
    start_model_job(snakemake)
    evaluate_generalization(
        **variant_job(snakemake),
        adapter_dir=snakemake.input.get("adapter"),
        test_sets=dict(zip(snakemake.params.groups, snakemake.input.sets)),
        settings=FidelitySettings(**snakemake.params.settings),
        prompts_csv=snakemake.output[0],
    )
