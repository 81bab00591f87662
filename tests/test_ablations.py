"""train.ablations: expansion into named variants, their training settings, and config errors."""

from __future__ import annotations

import copy
import json

import pytest

from cft.config import ConfigError, ablation_variants, load_config, train_settings, validate_config


@pytest.fixture(scope="module")
def default(repo_root):
    return load_config(repo_root / "config" / "config.yaml")


def with_ablations(config, *ablations):
    config = copy.deepcopy(config)
    config["train"]["ablations"] = list(ablations)
    return validate_config(config)


GRID = {"method": "soft", "name": "soft_d{decimals}_b{max_bins}", "grid": {"decimals": [1, 2], "max_bins": [1001, 4096]}}
BUDGET = {"method": "hard", "name": "hard_s{samples_per_prompt}_e{epochs}",
          "settings": [{"samples_per_prompt": 8, "epochs": 4}, {"samples_per_prompt": 32, "epochs": 1}]}


def test_grid_and_settings_expand_to_named_variants(default):
    config = with_ablations(default, GRID, BUDGET)
    variants = ablation_variants(config)
    assert list(variants) == ["soft_d1_b1001", "soft_d1_b4096", "soft_d2_b1001", "soft_d2_b4096",
                              "hard_s8_e4", "hard_s32_e1"]
    assert variants["soft_d2_b4096"] == {"method": "soft", "overrides": {"decimals": 2, "max_bins": 4096},
                                         "models": ["smollm2_135m"]}


def test_ablation_settings_are_the_method_settings_with_overrides(default):
    config = with_ablations(default, GRID, BUDGET)
    soft, ablated = train_settings(config, "smollm2_135m", "soft"), train_settings(config, "smollm2_135m", "soft_d2_b4096")
    # The varied target keys change the method's target, the rest of its settings stay.
    assert ablated == {**soft, "target": {**soft["target"], "decimals": 2, "max_bins": 4096}}
    hard, budget = train_settings(config, "smollm2_135m", "hard"), train_settings(config, "smollm2_135m", "hard_s8_e4")
    assert budget == {**hard, "samples_per_prompt": 8, "epochs": 4} and budget["method"] == "hard"


def test_plain_method_settings_do_not_depend_on_ablations(default):
    """Adding ablations must not change (and so rerun) the existing soft and hard jobs."""
    config = with_ablations(default, GRID, BUDGET)
    for method in ("soft", "hard"):
        assert json.dumps(train_settings(config, "smollm2_135m", method)) == \
            json.dumps(train_settings(default, "smollm2_135m", method))


@pytest.mark.parametrize("ablation, message", [
    ({"method": "sofft", "name": "x_{decimals}", "grid": {"decimals": [1]}}, "train.ablations[0].method"),
    ({"method": "soft", "name": "x_{decimals}", "grid": {"decimals": [1]}, "settings": [{"decimals": 2}]},
     "exactly one of 'grid' and 'settings'"),
    ({"method": "soft", "name": "x_{decimals}", "grid": {"decimals": [99]}}, "train.ablations[0].grid.decimals"),
    ({"method": "soft", "name": "x_{decimals}", "grid": {"samples_per_prompt": [4]}}, "samples_per_prompt"),
    ({"method": "soft", "name": "x", "grid": {"decimals": [1, 2]}}, "'x' is already used"),
    ({"method": "soft", "name": "soft", "settings": [{"decimals": 2}]}, "'soft' is already used"),
    ({"method": "soft", "name": "X-{decimals}", "grid": {"decimals": [1]}}, "lowercase letters"),
    ({"method": "soft", "name": "x_{bins}", "grid": {"decimals": [1]}}, "cannot be filled"),
    ({"method": "soft", "name": "x_{decimals}", "grid": {"decimals": [1]}, "models": ["gpt5"]}, "no model named 'gpt5'"),
])
def test_bad_ablations_name_the_key(default, ablation, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        with_ablations(default, ablation)


def test_paper_ablations(repo_root):
    config = load_config(repo_root / "config" / "config.yaml", repo_root / "config" / "paper.yaml")
    variants = ablation_variants(config)
    # The ablations the paper's code carries: 4 x 3 grid granularities and 3 hard budgets on Qwen3-1.7B.
    paper = [f"soft_d{d}_b{b}" for d in (1, 2, 3, 5) for b in (1001, 4096, 16384)]
    paper += ["hard_s8_e4", "hard_s16_e2", "hard_s32_e1"]
    for name in paper:
        assert variants[name]["models"] == ["qwen3_1p7b"]
        assert variants[name]["method"] == name.split("_")[0]
    assert train_settings(config, "qwen3_1p7b", "hard_s16_e2") == train_settings(config, "qwen3_1p7b", "hard")
