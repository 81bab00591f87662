from cft.evaluation.fidelity import FidelityOutputs, FidelitySettings, evaluate_fidelity_transforms
from cft.jobs import start_model_job, torch_threads

if __name__ == "__main__":
    start_model_job(snakemake)
    variants = snakemake.params.variant_files
    outputs = zip(snakemake.output.prompts, snakemake.output.samples, snakemake.output.distributions)
    evaluate_fidelity_transforms(
        model_record_path=snakemake.input.model,
        variants=variants,
        test_sets={split: snakemake.input[split] for split in snakemake.params.splits},
        settings=FidelitySettings(**snakemake.params.settings),
        outputs={variant: FidelityOutputs(*files) for variant, files in zip(variants, outputs)},
        device=snakemake.params.device,
        threads=torch_threads(snakemake),
    )
