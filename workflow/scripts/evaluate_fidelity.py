from cft.devices import bind_gpus
from cft.evaluation.fidelity import FidelitySettings, evaluate_fidelity
from cft.jobs import log_to, variant_job

if __name__ == "__main__":
    log_to(snakemake.log[0])
    # On a machine with several GPUs, this job's own devices, before anything starts CUDA.
    bind_gpus(snakemake.resources.gpu)
    evaluate_fidelity(
        **variant_job(snakemake),
        adapter_dir=snakemake.input.get("adapter"),
        test_sets={split: snakemake.input[split] for split in snakemake.params.splits},
        settings=FidelitySettings(**snakemake.params.settings),
        prompts_csv=snakemake.output.prompts,
        samples_jsonl=snakemake.output.samples,
        distributions_json=snakemake.output.distributions,
    )
