from cft.baselines.ats import train_ats
from cft.jobs import start_model_job

if __name__ == "__main__":
    start_model_job(snakemake)
    train_ats(
        model_record_path=snakemake.input.model,
        loss=snakemake.params.loss,
        prompts_path=snakemake.input.prompts,
        settings=snakemake.params.settings,
        head_out=snakemake.output.head,
        record_out=snakemake.output.record,
        log_csv=snakemake.output.log_csv,
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
