from cft.jobs import start_model_job, variant_job
from cft.transfer.mcq import McqSettings, evaluate_mcq

if __name__ == "__main__":
    start_model_job(snakemake)
    evaluate_mcq(
        **variant_job(snakemake),
        adapter_dir=snakemake.input.get("adapter"),
        settings=McqSettings(**snakemake.params.settings),
        generations_jsonl=snakemake.output.generations,
        summary_json=snakemake.output.summary,
    )
