import logging
import sys

from cft.baselines.temperature import fit_global_temperature

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    fit_global_temperature(
        model_record_path=snakemake.input.model,
        prompts_path=snakemake.input.prompts,
        settings=snakemake.params.settings,
        out_json=snakemake.output.temperature,
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
