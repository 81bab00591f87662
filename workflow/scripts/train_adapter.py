import sys

from cft.training import train_from_workflow

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    train_from_workflow(
        model_record=snakemake.input.model,
        prompts_path=snakemake.input.prompts,
        settings=snakemake.params.settings,
        checkpoint_dir=snakemake.params.checkpoint_dir,
        adapter_dir=snakemake.output.adapter,
        log_csv=snakemake.output.log_csv,
        record_path=snakemake.output.record,
        threads=snakemake.threads,
        device=snakemake.params.device,
    )
