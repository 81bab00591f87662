import sys

from cft.jobs import start_model_job, torch_threads
from cft.launch import tensorboard_dir, train_adapter_job

if __name__ == "__main__":
    # INFO logging too: a retried job's "resumed ... from <checkpoint>" goes to its log.
    start_model_job(snakemake)
    train_adapter_job(
        # Read from the config rather than params, so that adding the launcher left the params
        # (and with them the finished jobs) of existing configs unchanged. `snakemake.config` is the
        # config before validation filled in defaults, hence the default here.
        launcher=snakemake.config["train"].get("launcher", {"kind": "none"}),
        gpus=snakemake.resources.gpu,
        model_record=snakemake.input.model,
        prompts_path=snakemake.input.prompts,
        settings=snakemake.params.settings,
        checkpoint_dir=snakemake.params.checkpoint_dir,
        adapter_dir=snakemake.output.adapter,
        log_csv=snakemake.output.log_csv,
        record_path=snakemake.output.record,
        snapshots_dir=snakemake.output.snapshots,
        threads=torch_threads(snakemake),
        device=snakemake.params.device,
        log=sys.stderr,
        # Also read from the config, for the same reason as the launcher; not a declared output,
        # since the event files are written while the job runs and kept when it fails.
        tensorboard_dir=tensorboard_dir(snakemake.config, snakemake.wildcards.model, snakemake.wildcards.method),
    )
