from cft.evaluation.fidelity import FidelitySettings, evaluate_fidelity
from cft.jobs import start_model_job, variant_job

if __name__ == "__main__":
    start_model_job(snakemake)
    evaluate_fidelity(
        **variant_job(snakemake),
        adapter_dir=snakemake.input.get("adapter"),
        test_sets={split: snakemake.input[split] for split in snakemake.params.splits},
        settings=FidelitySettings(**snakemake.params.settings),
        prompts_csv=snakemake.output.prompts,
        samples_jsonl=snakemake.output.samples,
        distributions_json=snakemake.output.distributions,
    )
