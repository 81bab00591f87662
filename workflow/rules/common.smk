# Config validation, wildcard constraints and input functions. No rules live here.

from cft.config import model_entry, train_settings, validate_config
from cft.grids import SPLITS

config = validate_config(config)

MODELS = [model["name"] for model in config["models"]]
METHODS = list(config["train"]["methods"])
VARIANTS = [v for v in config["evaluate"]["variants"] if v == "base" or v in METHODS]


wildcard_constraints:
    model="|".join(MODELS),
    method="|".join(["soft", "hard"]),
    split="|".join(SPLITS),
    variant="|".join(["base", "soft", "hard"]),


FIDELITY_FIGURES = ["fidelity_summary", "fidelity_heatmap", "fidelity_overlays", "fidelity_valid_rate"]


def final_outputs():
    return [
        *expand("results/datasets/{split}.jsonl", split=SPLITS),
        "results/datasets/train_subset.jsonl",
        *expand("results/adapters/{model}/{method}/train_log.csv", model=MODELS, method=METHODS),
        "results/figures/training_curves.pdf",
        "results/tables/fidelity_summary.csv",
        *[f"results/figures/{name}.pdf" for name in FIDELITY_FIGURES],
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


def model_memory_mb(name, training=False):
    """Host memory: weights in fp32 on CPU (4 bytes/param) or bf16 staging on GPU, plus headroom."""
    bytes_per_param = 2 if on_gpu() else 4
    factor = 3 if training else 2
    return int(2000 + model_size_b(name) * 1000 * bytes_per_param * factor)


def train_runtime_min(name):
    return int(60 + 60 * model_size_b(name))


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
    if wildcards.variant != "base":
        inputs["adapter"] = f"results/adapters/{wildcards.model}/{wildcards.variant}/adapter"
    return inputs


def fidelity_settings(wildcards):
    soft = config["train"]["soft"]
    return {
        **config["evaluate"]["fidelity"],
        "mc_seeds": tuple(config["evaluate"]["fidelity"]["mc_seeds"]),
        "seed": config["seed"],
        "trie_decimals": soft["decimals"],
        "trie_max_bins": soft["max_bins"],
        "quantile_low": config["data"]["quantile_low"],
        "quantile_high": config["data"]["quantile_high"],
    }


def fidelity_distributions(wildcards):
    return {
        f"{model}__{variant}": f"results/fidelity/{model}/{variant}/distributions.json"
        for model in MODELS
        for variant in VARIANTS
    }


def variant_inputs(wildcards):
    """The model record, plus the LoRA adapter when the variant is a trained method (any evaluation)."""
    inputs = {"model": f"results/models/{wildcards.model}.json"}
    if wildcards.variant in METHODS:
        inputs["adapter"] = f"results/adapters/{wildcards.model}/{wildcards.variant}/adapter"
    return inputs
