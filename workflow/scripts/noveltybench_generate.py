from cft.devices import bind_gpus
from cft.jobs import log_to, variant_job
from cft.transfer.noveltybench import GenerationSettings, generate

if __name__ == "__main__":
    log_to(snakemake.log[0])
    # On a machine with several GPUs, this job's own devices, before anything starts CUDA.
    bind_gpus(snakemake.resources.gpu)
    generate(
        **variant_job(snakemake),
        prompts_path=snakemake.input.prompts,
        prompt_set=snakemake.wildcards.nb_set,
        num_prompts=snakemake.params.num_prompts,
        settings=GenerationSettings(**snakemake.params.settings),
        out_path=snakemake.output[0],
    )
