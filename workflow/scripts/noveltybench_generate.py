from cft.jobs import start_model_job, variant_job
from cft.transfer.noveltybench import GenerationSettings, generate

if __name__ == "__main__":
    start_model_job(snakemake)
    generate(
        **variant_job(snakemake),
        prompts_path=snakemake.input.prompts,
        prompt_set=snakemake.wildcards.nb_set,
        num_prompts=snakemake.params.num_prompts,
        settings=GenerationSettings(**snakemake.params.settings),
        out_path=snakemake.output[0],
    )
