from cft.jobs import log_to, variant_job
from cft.transfer.noveltybench import GenerationSettings, generate

if __name__ == "__main__":
    log_to(snakemake.log[0])
    generate(
        **variant_job(snakemake),
        prompts_path=snakemake.input.prompts,
        prompt_set=snakemake.wildcards.nb_set,
        num_prompts=snakemake.params.num_prompts,
        settings=GenerationSettings(**snakemake.params.settings),
        out_path=snakemake.output[0],
    )
