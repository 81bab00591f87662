import logging
import sys

from cft.evaluation.fidelity import FidelitySettings, evaluate_fidelity

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    evaluate_fidelity(
        model_record_path=snakemake.input.model,
        adapter_dir=snakemake.input.get("adapter"),
        variant=snakemake.wildcards.variant,
        test_sets={split: snakemake.input[split] for split in snakemake.params.splits},
        settings=FidelitySettings(**snakemake.params.settings),
        prompts_csv=snakemake.output.prompts,
        samples_jsonl=snakemake.output.samples,
        distributions_json=snakemake.output.distributions,
        device=snakemake.params.device,
        threads=snakemake.threads,
        variant_files=snakemake.input,
    )
