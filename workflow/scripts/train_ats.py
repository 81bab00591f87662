import logging
import sys

from cft.baselines.ats import train_ats

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
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
