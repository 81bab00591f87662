# Config validation, wildcard constraints, the variant lists (from the registries of cft.training and
# cft.variants), job resources, input functions and settings helpers. No rules live here, and no
# function lives beside the rules (`snakemake --lint`).

from snakemake.exceptions import WorkflowError

from cft.assets import missing_assets
from cft.config import ConfigError, ablation_variants, adapter_settings, curve_methods, curve_splits, model_entry
from cft.config import validate_config
from cft.config import evaluation_target
from cft.evaluation.comparisons import comparison_pairs
from cft.evaluations import PERPLEXITY_STAND_IN_ROOT, registered_runs
from cft.grids import SPLITS
from cft.transfer.noveltybench import PROMPT_SET_FILES
from cft.training import METHODS as METHOD_REGISTRY
from cft.variants import VARIANTS as VARIANT_REGISTRY
from cft.variants import VARIANT_KINDS, evaluated_variants, fitted_kinds, shares_base_decoder, variant_files
from cft.variants import variant_kind

try:
    config = validate_config(config)
except ConfigError as error:
    # A WorkflowError is printed as its message alone; any other exception also gets a traceback.
    raise WorkflowError(f"invalid config: {error}") from None
# The scripts receive the config as given, before validation filled in its defaults; the one key
# they read themselves (cft.jobs.torch_threads) is set there too.
workflow.config["torch_threads"] = config["torch_threads"]

MODELS = [model["name"] for model in config["models"]]
METHODS = list(config["train"]["methods"])
# Ablations (train.ablations): extra trained variants such as soft_d2_b4096, each a base method plus
# overrides; trained by train_adapter and evaluated by evaluate_fidelity under their own names.
ABLATIONS = ablation_variants(config)
TRAINED = [*METHODS, *ABLATIONS]
# Baselines: the registered variants of cft.variants other than the base model (a fitted global
# temperature, ATS heads, String Seed of Thought), evaluated like the adapters.
BASELINES = [v for v in config["evaluate"]["variants"] if v in VARIANT_REGISTRY and v != "base"]
# Every evaluated variant: the base model and the trained methods, then the baselines, each in config order.
VARIANTS = [v for v in config["evaluate"]["variants"] if v not in BASELINES] + BASELINES
# The baselines with a fitted file (cft.variants.VariantKind.input_key), drawn in the baselines figure.
FITTED_BASELINES = [v for v in BASELINES if variant_kind(v).input_key]
# Fidelity along training (evaluate.curve): the trained and evaluated methods whose snapshots are scored.
CURVE_METHODS = curve_methods(config)
CURVE_SPLITS = curve_splits(config)


def variants_for(evaluation, variants=VARIANTS):
    """The variants of `variants` that `evaluation` takes: what their kind can do and what the
    evaluation needs (its entry in cft.evaluations) decide, never their name."""
    return evaluated_variants(evaluation, variants, TRAINED)


# Where the shape is learned (evaluate.generalization): the evaluated variants scored on seen prompts
# and on unseen ones inside and outside the training range.
GENERALIZATION_VARIANTS = variants_for(
    "generalization", [v for v in config["evaluate"]["generalization"]["variants"] if v in VARIANTS]
)
GENERALIZATION_GROUPS = ["seen", "unseen_inside", "unseen_outside"]


wildcard_constraints:
    model="|".join(MODELS),
    method="|".join([*METHOD_REGISTRY, *ABLATIONS]),
    split="|".join(SPLITS),
    variant="|".join([*METHOD_REGISTRY, *ABLATIONS, *VARIANT_REGISTRY]),


FIDELITY_FIGURES = ["fidelity_summary", "fidelity_heatmap", "fidelity_overlays", "fidelity_valid_rate"]


def final_outputs():
    return [
        *expand("results/datasets/{split}.jsonl", split=SPLITS),
        "results/datasets/train_subset.jsonl",
        *expand("results/adapters/{model}/{method}/train_log.csv", model=MODELS, method=METHODS),
        "results/figures/training_curves.pdf",
        *(["results/figures/baselines.pdf"] if FITTED_BASELINES else []),
        "results/tables/fidelity_summary.csv",
        *[f"results/figures/{name}.pdf" for name in FIDELITY_FIGURES],
        *(["results/tables/fidelity_comparisons.csv", "results/figures/fidelity_comparisons.pdf"]
          if comparison_pairs(VARIANTS, METHODS) else []),
        *(["results/tables/fidelity_curve.csv", "results/figures/fidelity_curve.pdf"] if CURVE_METHODS else []),
        *(["results/tables/fidelity_generalization.csv", "results/figures/fidelity_generalization.pdf"]
          if comparison_pairs(GENERALIZATION_VARIANTS, METHODS) else []),
        "results/tables/openended_summary.csv",
        "results/tables/mcq_summary.csv",
        *[f"results/figures/{name}.pdf" for name in ("openended_support", "openended_case_studies", "mcq_positions")],
        *(["results/tables/ablations_summary.csv", "results/figures/ablations_summary.pdf"] if ABLATIONS else []),
        "results/tables/noveltybench_summary.csv",
        "results/figures/noveltybench.pdf",
        *[evaluation.table.path for evaluation in REGISTERED_EVALUATIONS],
        *[f"{evaluation.figure.path}.pdf" for evaluation in REGISTERED_EVALUATIONS],
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
    """Threads of a job that runs a model: the config's `torch_threads`, which the job also sets as
    torch's thread count (cft.jobs.torch_threads) whatever Snakemake or the scheduler grants, so
    that results do not change with `--cores` or the allocation."""
    return config["torch_threads"]


def model_job_resources(training=False, runtime=None, gpus=None, mem_mb=None, passes=1):
    """The resources of a job that runs a model of `{model}` (with `threads: model_job_threads()`):
    host memory for its weights (or `mem_mb(wildcards)`), a runtime that grows with the model's size
    (or `runtime` minutes) and with the `passes` (variants) it evaluates, and one GPU on GPU runs (or
    `gpus(model)` of them)."""
    return {
        "mem_mb": mem_mb or (lambda wc: model_memory_mb(wc.model, training=training)),
        "runtime": lambda wc: (runtime or train_runtime_min(wc.model)) * passes,
        "gpu": lambda wc: gpus(wc.model) if gpus else int(on_gpu()),
    }


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


def variant_inputs(wildcards):
    """The model record and the variant's own file, if its kind has one (a trained method's LoRA
    adapter, a fitted temperature, an ATS head; cft.variants.variant_files), for any evaluation."""
    return {"model": f"results/models/{wildcards.model}.json",
            **variant_files(wildcards.model, wildcards.variant, TRAINED)}


def fidelity_inputs(wildcards):
    return {
        **variant_inputs(wildcards),
        **{split: f"results/datasets/{split}.jsonl" for split in config["evaluate"]["splits"]},
    }


def protocol_settings(variant):
    """A prompting protocol's own sampling settings (`baselines.<protocol>`: its sample count, token
    budget and system prompt), for a variant of a prompting kind; {} for any other variant. A curve
    job has a method and no variant: None."""
    protocol = variant_kind(variant, TRAINED).prompting if variant else None
    if protocol is None:
        return {}
    section = config["baselines"][protocol]
    return {"num_samples": section["num_samples"], "max_new_tokens": section["max_new_tokens"],
            f"{protocol}_system_prompt": section["system_prompt"]}


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
    return {
        **config["evaluate"]["fidelity"],
        "mc_seeds": tuple(config["evaluate"]["fidelity"]["mc_seeds"]),
        "seed": config["seed"],
        "target": evaluation_target(config),
        **protocol_settings(wildcards.get("variant")),
    }


def fidelity_distributions(wildcards):
    return {
        f"{model}__{variant}": f"results/fidelity/{model}/{variant}/distributions.json"
        for model in MODELS
        for variant in VARIANTS
    }


# The kinds with a fitter among the evaluated variants (baselines.smk), with their variants.
FITTED_KINDS = fitted_kinds(VARIANTS)
FITTERS = {kind: VARIANT_KINDS[kind].fitter for kind in FITTED_KINDS}


def fit_job_stem(fitter):
    """A fit job's log and benchmark name: the wildcards of its outputs."""
    return "{model}_{variant}" if any("{variant}" in path for path in fitter.outputs.values()) else "{model}"


def baseline_target_settings():
    """The target the evaluations score against (evaluate.target, the soft adapter's): the temperature
    and ATS-KL objectives fit to its tries."""
    return {"seed": config["seed"], "target": evaluation_target(config)}


def baseline_fit_files(wildcards):
    """The temperature fits and ATS loss logs of every model, for the baselines figure."""
    files = {}
    for model in MODELS:
        for variant in FITTED_BASELINES:
            kind = variant_kind(variant).name
            if kind == "temperature":
                files[f"temperature__{model}"] = f"results/variants/{model}/temperature.json"
            elif kind == "ats":
                files[f"ats__{model}__{variant}"] = f"results/variants/{model}/{variant}/train_log.csv"
    return files


def ablation_table_inputs(wildcards):
    """The fidelity files of the ablations, beside base and the main methods of the same models."""
    models = sorted({model for ablation in ABLATIONS.values() for model in ablation["models"]})
    compared = [v for v in VARIANTS if v == "base" or v in METHODS]
    pairs = [(model, variant) for model in models for variant in compared]
    pairs += [(model, name) for name, ablation in ABLATIONS.items() for model in ablation["models"]]
    return {
        "prompts": [f"results/fidelity/{model}/{variant}/prompts.csv" for model, variant in pairs],
        "samples": [f"results/fidelity/{model}/{variant}/samples.jsonl" for model, variant in pairs],
        "test_sets": expand("results/datasets/{split}.jsonl", split=config["evaluate"]["splits"]),
    }


# Transfer (transfer.smk)


def transfer_settings(section):
    """The `evaluate.<section>` settings plus the master seed that the sample seeds derive from; a
    prompting protocol samples with its own count and token budget (`protocol_settings`), as in the
    fidelity evaluation, and on at most its own number of open-ended prompts."""

    def settings(wildcards):
        settings = {**config["evaluate"][section], "seed": config["seed"], **protocol_settings(wildcards.variant)}
        protocol = variant_kind(wildcards.variant, TRAINED).prompting
        most = config["baselines"][protocol].get("openended_max_prompts") if protocol else None
        if most and "max_prompts" in settings:
            settings["max_prompts"] = min(settings["max_prompts"] or 102, most)
        return settings

    return settings


def every_variant(pattern, variants):
    """`pattern` for every model and each of `variants`."""
    return expand(pattern, model=MODELS, variant=variants)


# NoveltyBench (noveltybench.smk): the evaluated variants that ask its prompts as they are, of those
# evaluate.noveltybench.variants names (null = all).
NOVELTYBENCH = config["evaluate"]["noveltybench"]
NOVELTYBENCH_VARIANTS = [
    v for v in variants_for("noveltybench") if NOVELTYBENCH["variants"] is None or v in NOVELTYBENCH["variants"]
]


def noveltybench_files(name):
    """`name` under every (model, variant, prompt set) of the NoveltyBench matrix."""
    return expand(
        f"results/noveltybench/{{model}}/{{variant}}/nb-{{nb_set}}/{name}",
        model=MODELS,
        variant=NOVELTYBENCH_VARIANTS,
        nb_set=NOVELTYBENCH["prompt_sets"],
    )


def noveltybench_generation_settings(wildcards):
    keys = ("k", "max_new_tokens", "temperature", "top_p", "batch_size", "backend")
    return {**{key: NOVELTYBENCH[key] for key in keys}, "seed": config["seed"]}


def scorer_memory_mb(wildcards):
    """The stand-in judges are small; Skywork-27B needs its bf16 weights staged in host memory."""
    if NOVELTYBENCH["reward"]["kind"] == "skywork":
        return 60000
    return model_memory_mb(wildcards.model) + 1000


# Retention (retention.smk: the data its registered evaluations read)
RETENTION = config["evaluate"]["retention"]


# The registered evaluations (evaluations.smk, cft.evaluations): those the config's variants reach.
REGISTERED_EVALUATIONS = [evaluation for evaluation in registered_runs() if variants_for(evaluation.name)]


def registered_inputs(evaluation):
    """The input function of `evaluate_<name>`: the variant's files and the evaluation's own inputs."""
    extra = evaluation.inputs(evaluation.settings_of(config)) if evaluation.inputs else {}

    def inputs(wildcards):
        return {**variant_inputs(wildcards), **extra}

    return inputs


def registered_outputs(evaluation):
    """The first output of every (model, variant) job of `evaluation`."""
    return every_variant(next(iter(evaluation.outputs.values())), variants_for(evaluation.name))


def shared_decoder_variants(evaluation):
    """The variants of `evaluation` that one job per model scores together (base and its logit
    transforms, `SHARED_TREE_VARIANTS`), where the entry has a shared runner and there are two or more."""
    if evaluation.shared_runner is None:
        return []
    shared = [v for v in variants_for(evaluation.name) if v in SHARED_TREE_VARIANTS]
    return shared if len(shared) > 1 else []


def shared_decoder_outputs(evaluation):
    """Every output of every shared variant, named `<variant>__<output>`, with the {model} wildcard."""
    return {
        f"{variant}__{key}": path.replace("{variant}", variant)
        for variant in shared_decoder_variants(evaluation)
        for key, path in evaluation.outputs.items()
    }


def shared_decoder_inputs(evaluation):
    """The model record, the evaluation's own inputs and every shared variant's files (`<variant>__<key>`)."""
    extra = evaluation.inputs(evaluation.settings_of(config)) if evaluation.inputs else {}

    def inputs(wildcards):
        files = {"model": f"results/models/{wildcards.model}.json", **extra}
        for variant in shared_decoder_variants(evaluation):
            files.update({f"{variant}__{key}": path for key, path in variant_files(wildcards.model, variant).items()})
        return files

    return inputs


def shared_decoder_files(evaluation):
    """The params of a shared job: each shared variant's input files by key ({} for base)."""
    return lambda wc: {v: variant_files(wc.model, v) for v in shared_decoder_variants(evaluation)}


def check_assets():
    problems = missing_assets(config)
    if problems:
        raise WorkflowError("missing assets:\n- " + "\n- ".join(problems))
