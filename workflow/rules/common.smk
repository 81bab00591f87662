# Config validation, wildcard constraints and input functions. No rules live here.

from snakemake.exceptions import WorkflowError

from cft.assets import missing_assets
from cft.config import ConfigError, ablation_variants, adapter_settings, curve_methods, model_entry, validate_config
from cft.config import evaluation_target
from cft.evaluation.comparisons import comparison_pairs
from cft.grids import SPLITS
from cft.variants import shares_base_decoder, variant_files, variant_kind

try:
    config = validate_config(config)
except ConfigError as error:
    # A WorkflowError is printed as its message alone; any other exception also gets a traceback.
    raise WorkflowError(f"invalid config: {error}") from None

MODELS = [model["name"] for model in config["models"]]
METHODS = list(config["train"]["methods"])
VARIANTS = [v for v in config["evaluate"]["variants"] if v == "base" or v in METHODS]
# Ablations (train.ablations): extra trained variants such as soft_d2_b4096, each a base method plus
# overrides; trained by train_adapter and evaluated by evaluate_fidelity under their own names.
ABLATIONS = ablation_variants(config)
# Baselines (cft.variants): a fitted global temperature, ATS heads and String Seed of Thought,
# evaluated like the adapters; their files come from workflow/rules/baselines.smk.
BASELINE_VARIANTS = ["temperature", "ats_smooth", "ats_kl", "ssot"]
BASELINES = [v for v in config["evaluate"]["variants"] if v in BASELINE_VARIANTS]
VARIANTS = VARIANTS + BASELINES
# Fidelity along training (evaluate.curve): the trained and evaluated methods whose snapshots are scored.
CURVE_METHODS = curve_methods(config)
# Where the shape is learned (evaluate.generalization): the evaluated variants scored on seen prompts
# and on unseen ones inside and outside the training range.
GENERALIZATION_VARIANTS = [v for v in config["evaluate"]["generalization"]["variants"] if v in VARIANTS]
GENERALIZATION_GROUPS = ["seen", "unseen_inside", "unseen_outside"]


wildcard_constraints:
    model="|".join(MODELS),
    method="|".join(["soft", "hard", "fullsupport", "exactdigit", *ABLATIONS]),
    split="|".join(SPLITS),
    variant="|".join(["base", "soft", "hard", "fullsupport", "exactdigit", *ABLATIONS, *BASELINE_VARIANTS]),
    ats_variant="ats_smooth|ats_kl",


FIDELITY_FIGURES = ["fidelity_summary", "fidelity_heatmap", "fidelity_overlays", "fidelity_valid_rate"]


def final_outputs():
    return [
        *expand("results/datasets/{split}.jsonl", split=SPLITS),
        "results/datasets/train_subset.jsonl",
        *expand("results/adapters/{model}/{method}/train_log.csv", model=MODELS, method=METHODS),
        "results/figures/training_curves.pdf",
        *(["results/figures/baselines.pdf"] if set(BASELINES) - {"ssot"} else []),
        "results/tables/fidelity_summary.csv",
        *[f"results/figures/{name}.pdf" for name in FIDELITY_FIGURES],
        *(["results/tables/fidelity_comparisons.csv", "results/figures/fidelity_comparisons.pdf"]
          if comparison_pairs(VARIANTS, METHODS) else []),
        *(["results/tables/fidelity_curve.csv", "results/figures/fidelity_curve.pdf"] if CURVE_METHODS else []),
        *(["results/tables/fidelity_generalization.csv", "results/figures/fidelity_generalization.pdf"]
          if comparison_pairs(GENERALIZATION_VARIANTS, METHODS) else []),
        "results/tables/openended_summary.csv",
        "results/tables/mcq_summary.csv",
        "results/tables/openended_choices.csv",
        *[f"results/figures/{name}.pdf" for name in ("openended_support", "openended_case_studies", "openended_choices",
                                                      "mcq_positions")],
        *(["results/tables/ablations_summary.csv", "results/figures/ablations_summary.pdf"] if ABLATIONS else []),
        "results/tables/noveltybench_summary.csv",
        "results/figures/noveltybench.pdf",
        "results/tables/retention_tasks.csv",
        "results/tables/retention_perplexity.csv",
        "results/figures/retention_tasks.pdf",
        "results/figures/retention_perplexity.pdf",
    ]


def ablation_files(pattern):
    """`pattern` (with {model} and {variant}) for every (model, ablation variant) the config trains."""
    return [
        pattern.format(model=model, variant=name)
        for name, ablation in ABLATIONS.items()
        for model in ablation["models"]
    ]


def model_size_b(name):
    """Parameter count in billions (config `params_b`), used to scale resources."""
    return model_entry(config, name).get("params_b") or 1.0


def on_gpu():
    return config["device"] != "cpu"


def gpus_for(name):
    """GPUs a training job asks for: none on CPU runs, two for models above 14B parameters."""
    if not on_gpu():
        return 0
    return 2 if model_size_b(name) > 14 else 1


def model_job_threads():
    """Threads of a job that runs a model: every core, except where the profile caps the GPUs in use
    at once (`resources: gpu: N`, profiles/local-gpu): then the cores per GPU, so that N 1-GPU jobs
    run side by side, each on its own device (cft.devices)."""
    gpus = workflow.global_resources.get("gpu")
    gpus = gpus.value if gpus is not None else None
    if on_gpu() and gpus:
        return max(workflow.cores // gpus, 1)
    return max(workflow.cores, 1)


def model_memory_mb(name, training=False):
    """Host memory: weights in fp32 on CPU (4 bytes/param) or bf16 staging on GPU, plus headroom."""
    bytes_per_param = 2 if on_gpu() else 4
    factor = 3 if training else 2
    return int(2000 + model_size_b(name) * 1000 * bytes_per_param * factor)


def train_runtime_min(name):
    return int(60 + 60 * model_size_b(name))


def adapter_training_settings(wildcards):
    return adapter_settings(config, wildcards.model, wildcards.method)


def training_logs(wildcards):
    return {
        f"{model}__{method}": f"results/adapters/{model}/{method}/train_log.csv"
        for model in MODELS
        for method in METHODS
    }


def torch_device():
    """None lets the job pick CUDA when its machine has it."""
    return None if config["device"] == "auto" else config["device"]


def fidelity_inputs(wildcards):
    inputs = {
        "model": f"results/models/{wildcards.model}.json",
        **{split: f"results/datasets/{split}.jsonl" for split in config["evaluate"]["splits"]},
    }
    if wildcards.variant in BASELINE_VARIANTS:
        inputs.update(variant_files(wildcards.model, wildcards.variant))
    elif wildcards.variant != "base":
        inputs["adapter"] = f"results/adapters/{wildcards.model}/{wildcards.variant}/adapter"
    return inputs


# Base and its logit transforms (a fitted temperature, the ATS heads) share the base decoder: one
# evaluate_fidelity_transforms job per model scores each prompt's tree once for all of them.
SHARED_TREE_VARIANTS = [v for v in VARIANTS if shares_base_decoder(variant_kind(v, [*METHODS, *ABLATIONS]))]


def fidelity_transform_inputs(wildcards):
    """The model record, the test splits, and the file of each logit-transform variant."""
    inputs = {
        "model": f"results/models/{wildcards.model}.json",
        **{split: f"results/datasets/{split}.jsonl" for split in config["evaluate"]["splits"]},
    }
    for variant in SHARED_TREE_VARIANTS:
        inputs.update({f"{variant}__{key}": path for key, path in variant_files(wildcards.model, variant).items()})
    return inputs


def fidelity_settings(wildcards):
    settings = {
        **config["evaluate"]["fidelity"],
        "mc_seeds": tuple(config["evaluate"]["fidelity"]["mc_seeds"]),
        "seed": config["seed"],
        "target": evaluation_target(config),
    }
    if wildcards.get("variant") == "ssot":
        # SSoT writes a seed string and reasoning before its answer: its own sample count and budget.
        ssot = config["baselines"]["ssot"]
        settings.update(num_samples=ssot["num_samples"], max_new_tokens=ssot["max_new_tokens"],
                        ssot_system_prompt=ssot["system_prompt"])
    return settings


def fidelity_distributions(wildcards):
    return {
        f"{model}__{variant}": f"results/fidelity/{model}/{variant}/distributions.json"
        for model in MODELS
        for variant in VARIANTS
    }


def variant_inputs(wildcards):
    """The model record, plus the LoRA adapter when the variant is a trained method (any evaluation)."""
    inputs = {"model": f"results/models/{wildcards.model}.json"}
    if wildcards.variant in METHODS or wildcards.variant in ABLATIONS:
        inputs["adapter"] = f"results/adapters/{wildcards.model}/{wildcards.variant}/adapter"
    if wildcards.variant in BASELINE_VARIANTS:
        inputs.update(variant_files(wildcards.model, wildcards.variant))
    return inputs


def check_assets():
    problems = missing_assets(config)
    if problems:
        raise WorkflowError("missing assets:\n- " + "\n- ".join(problems))
