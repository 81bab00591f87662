from cft.baselines.temperature import fit_global_temperature
from cft.jobs import start_model_job

if __name__ == "__main__":
    start_model_job(snakemake)
    fit_global_temperature(
        model_record_path=snakemake.input.model,
        prompts_path=snakemake.input.prompts,
        settings=snakemake.params.settings,
        out_json=snakemake.output.temperature,
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
