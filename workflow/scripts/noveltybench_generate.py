import logging
import sys

from cft.transfer.noveltybench import GenerationSettings, generate

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    generate(
        model_record_path=snakemake.input.model,
        variant=snakemake.wildcards.variant,
        variant_files=dict(snakemake.input),
        prompts_path=snakemake.input.prompts,
        prompt_set=snakemake.wildcards.nb_set,
        num_prompts=snakemake.params.num_prompts,
        settings=GenerationSettings(**snakemake.params.settings),
        out_path=snakemake.output[0],
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
