"""Bad configs get one clear message naming the key; good ones validate with defaults filled in."""

from __future__ import annotations

import copy

import pytest

from cft.config import ConfigError, load_config, load_yaml, train_settings, validate_config


@pytest.fixture(scope="module")
def default_config(repo_root):
    return load_yaml(repo_root / "config" / "config.yaml")


def test_shipped_configs_validate(repo_root):
    default = load_config(repo_root / "config" / "config.yaml")
    paper = load_config(repo_root / "config" / "config.yaml", repo_root / "config" / "paper.yaml")
    assert [m["name"] for m in default["models"]] == ["smollm2_135m"]
    assert len(paper["models"]) == 12, "the paper's list replaces the default model, it is not merged"
    assert paper["train"]["soft"]["epochs"] == 3 and paper["train"]["hard"]["samples_per_prompt"] == 16
    assert paper["data"]["train_prompts"] is None


def test_defaults_are_filled(default_config):
    config = copy.deepcopy(default_config)
    del config["train"]["soft"]["epochs"]
    del config["data"]["selection"]
    config = validate_config(config)
    assert config["train"]["soft"]["epochs"] == 3
    assert config["data"]["selection"] == "paper_selected"


def _set(config, dotted, value):
    keys = dotted.split(".")
    node = config
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    last = keys[-1]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value


DELETE = object()

BAD_CONFIGS = [
    ("data.selection", "everything", ["data.selection", "paper_selected", "full_grid"]),
    ("data.train_prompts", 0, ["data.train_prompts"]),
    ("data.train_prompts", "many", ["data.train_prompts"]),
    ("data.quantile_low", 0.7, ["data.quantile_low"]),
    ("data.train_families", ["gaussian", "gausian"], ["data.train_families[1]", "gausian", "uniform"]),
    ("data.heldout_families", ["poisson", "gaussian"], ["data.heldout_families", "gaussian"]),
    ("data.extra", 1, ["extra", "train_families"]),
    ("train.methods", ["soft", "dpo"], ["train.methods[1]", "dpo"]),
    ("train.common.lr", -1.0, ["train.common.lr"]),
    ("train.common.batch_size", 2.5, ["train.common.batch_size"]),
    ("train.common.lora_dropout", 1.5, ["train.common.lora_dropout"]),
    ("train.soft.max_bins", 1, ["train.soft.max_bins"]),
    ("train.soft.epsilon", 0.5, ["train.soft.epsilon"]),
    ("train.hard.samples_per_prompt", 0, ["train.hard.samples_per_prompt"]),
    ("train.hard.sample_count", 3, ["sample_count", "samples_per_prompt"]),
    ("models.0.source", "packaged:gpt5", ["models[0].source", "packaged:smollm2-135m-instruct"]),
    ("models.0.name", "Bad-Name", ["models[0].name"]),
    ("models.0.dtype", "int4", ["models[0].dtype", "bfloat16"]),
    ("models.0.chat", {"thinking": True}, ["thinking", "enable_thinking"]),
    ("seed", -3, ["seed"]),
    ("train", DELETE, ["train"]),
]


@pytest.mark.parametrize("key, value, expected", BAD_CONFIGS, ids=[f"{k}={v!r}"[:40] for k, v, _ in BAD_CONFIGS])
def test_bad_config_names_the_key(default_config, key, value, expected):
    config = copy.deepcopy(default_config)
    _set(config, key, value)
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    message = str(error.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message, message


def test_duplicate_model_names(default_config):
    config = copy.deepcopy(default_config)
    config["models"].append(dict(config["models"][0]))
    with pytest.raises(ConfigError, match=r"models\[1\]\.name"):
        validate_config(config)


def test_train_settings_layering(default_config):
    config = copy.deepcopy(default_config)
    config["models"][0]["train"] = {"soft": {"lr": 1e-4}, "common": {"batch_size": 4}}
    config = validate_config(config)
    soft = train_settings(config, "smollm2_135m", "soft")
    hard = train_settings(config, "smollm2_135m", "hard")
    assert soft["lr"] == 1e-4 and soft["batch_size"] == 4 and soft["method"] == "soft"
    assert hard["lr"] == config["train"]["common"]["lr"] and hard["batch_size"] == 4
    assert "samples_per_prompt" in hard and "samples_per_prompt" not in soft


def test_bad_model_override_names_the_key(default_config):
    config = copy.deepcopy(default_config)
    config["models"][0]["train"] = {"soft": {"lr": -1}}
    with pytest.raises(ConfigError, match=r"models\[0\]\.train\.soft\.lr"):
        validate_config(config)
    config["models"][0]["train"] = {"soft": {"learning_rate": 1e-4}}
    with pytest.raises(ConfigError, match="learning_rate"):
        validate_config(config)
