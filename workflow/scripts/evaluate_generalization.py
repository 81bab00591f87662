from cft.devices import bind_gpus
from cft.evaluation.fidelity import FidelitySettings
from cft.evaluation.generalization import evaluate_generalization
from cft.jobs import log_to, variant_job

if __name__ == "__main__":
    log_to(snakemake.log[0])
    # On a machine with several GPUs, this job's own devices, before anything starts CUDA.
    bind_gpus(snakemake.resources.gpu)
    evaluate_generalization(
        **variant_job(snakemake),
        adapter_dir=snakemake.input.get("adapter"),
        test_sets=dict(zip(snakemake.params.groups, snakemake.input.sets)),
        settings=FidelitySettings(**snakemake.params.settings),
        prompts_csv=snakemake.output[0],
    )
