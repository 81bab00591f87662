"""Loading and validating the workflow config.

A config file that is missing, not UTF-8 or not YAML is one line naming the file (and YAML's line
and column). Every float anywhere in the config must be finite (NaN passes JSON Schema's range
checks, so it is refused first, by key path). JSON Schema (workflow/schemas/config.schema.yaml) then
checks types, finite ranges and unknown keys and fills in defaults; the checks it cannot express
(known family ids and task names, train/held-out overlap, keys that must agree with other keys)
follow in `validate_config`. Every failure is one `ConfigError` line that names the offending key
(both keys, for a disagreement) and what is allowed there. `ConfigError` lives in `cft.errors`, so that
the domain modules whose settings are checked here (the transfer evaluations) raise it without
importing this module.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from cft.errors import ConfigError
from cft.targets import TargetSettings

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML file holds ({} for an empty file), or one ConfigError line naming the file."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise ConfigError(f"config file {str(path)!r}: cannot read it ({error.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError(f"config file {str(path)!r} is not UTF-8: byte 0x{raw[error.start]:02x} "
                          f"at line {line} (offset {error.start})") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{where}: {problem}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {str(path)!r}: the top level must be a mapping of keys, "
                          f"not a {type(loaded).__name__}")
    return loaded


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `override` into a copy of `base`, recursing into mappings (as Snakemake's --configfile does)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(*paths: str | Path) -> dict[str, Any]:
    """Load and deep-merge config files left to right, then validate."""
    config: dict[str, Any] = {}
    for path in paths:
        config = deep_merge(config, load_yaml(path))
    return validate_config(config)


def _key_path(path: Sequence[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top level>"


def _allowed_keys(schema: Mapping[str, Any], root: Mapping[str, Any]) -> list[str]:
    keys = set(schema.get("properties", {}))
    reference = schema.get("$ref", "")
    if reference.startswith("#/$defs/"):
        keys |= set(root["$defs"][reference.removeprefix("#/$defs/")].get("properties", {}))
    return sorted(keys)


def _describe(error: jsonschema.ValidationError, root: Mapping[str, Any], prefix: Sequence[Any] = ()) -> str:
    """One line for a schema error; `prefix` is the key path of the validated part inside the config."""
    path = [*prefix, *error.absolute_path]
    key = _key_path(path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        allowed = _allowed_keys(schema, root)
        unknown = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, Mapping) else []
        where = key if path else "the top level"
        return f"unknown config key {', '.join(repr(u) for u in unknown)} in {where}; allowed: {', '.join(allowed)}"
    if error.validator == "enum":
        return f"config key '{key}': {error.instance!r} is not allowed; allowed values: {', '.join(map(repr, error.validator_value))}"
    if error.validator == "required":
        return f"config key '{key}': {error.message}"
    if error.validator == "propertyNames":
        return f"config key '{key}': name {error.instance!r} must match {schema.get('pattern')} (lowercase letters, digits, '_')"
    return f"config key '{key}': {error.message}"


def _defaulting_validator():
    """A Draft 2020-12 validator that also fills in the schema's `default` values."""
    base = jsonschema.Draft202012Validator

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from base.VALIDATORS["properties"](validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})


def validate_config(config: Mapping[str, Any], schema_path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """Return a validated copy of `config` with defaults filled in, or raise ConfigError."""
    config = copy.deepcopy(dict(config))
    _check_finite(config, [])
    schema = load_yaml(schema_path)
    _check_moved_keys(config, schema)
    validator = _defaulting_validator()(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(_describe(error, schema))
    for index, model in enumerate(config["models"]):
        _check_model_overrides(index, model.get("train", {}), schema)
    _check_families(config["data"])
    _check_train_prompts(config["data"])
    _check_models(config["models"])
    _check_ablations(config, schema)
    _check_target_names(config, schema)
    _check_evaluated_variants(config, method_names(schema))
    _check_baselines(config["baselines"])
    _check_transfer(config["evaluate"])
    _check_noveltybench(config["evaluate"], method_names(schema))
    _check_retention(config["evaluate"]["retention"])
    return config


def _check_finite(value: Any, path: list[Any]) -> None:
    """Refuse NaN and infinities anywhere: NaN passes every minimum and maximum of JSON Schema."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key '{_key_path(path)}': {value} is not a finite number")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_finite(item, [*path, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, [*path, index])


# The keys of a target: the `targets` section's, and what an ablation may vary of its method's target.
TARGET_KEYS = TargetSettings.setting_names()


def _check_moved_keys(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """The target keys of the old layout (train.<method>.decimals and max_bins, data.quantile_low
    and quantile_high) say where they went, rather than being refused as unknown keys."""
    data = config.get("data")
    for key in ("quantile_low", "quantile_high"):
        if isinstance(data, Mapping) and key in data:
            raise ConfigError(f"config key 'data.{key}' has moved to the named targets: set targets.<name>.{key} "
                              f"(targets.soft.{key} and targets.hard.{key} for the paper's two)")
    sections = [("train", config.get("train"))]
    models = config.get("models")
    if isinstance(models, list):
        sections += [(f"models[{index}].train", model.get("train"))
                     for index, model in enumerate(models) if isinstance(model, Mapping)]
    for where, train in sections:
        if not isinstance(train, Mapping):
            continue
        for method, section in train.items():
            if not isinstance(section, Mapping):
                continue
            for key in TARGET_KEYS:
                if key in section:
                    method_schema = schema["properties"]["train"]["properties"].get(method, {})
                    default = method_schema.get("properties", {}).get("target", {}).get("default", "<name>")
                    named = section.get("target", default)
                    raise ConfigError(
                        f"config key '{where}.{method}.{key}' has moved to the named targets: set "
                        f"targets.{named}.{key}, the target that {where}.{method}.target names ('{named}'), "
                        f"or add a target and name it in {where}.{method}.target")


def _check_target_names(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Every target a method, a model's override, an ablation or the evaluations name is in `targets`."""
    names = list(config["targets"])
    references = [("evaluate.target", config["evaluate"]["target"])]
    for method in method_names(schema):
        references.append((f"train.{method}.target", config["train"][method]["target"]))
    for index, model in enumerate(config["models"]):
        for method, section in model.get("train", {}).items():
            if "target" in section:
                references.append((f"models[{index}].train.{method}.target", section["target"]))
    for index, entry in enumerate(config["train"]["ablations"]):
        for position, overrides in enumerate(_ablation_overrides(entry)):
            if "target" in overrides:
                where = "grid.target" if "grid" in entry else f"settings[{position}].target"
                references.append((f"train.ablations[{index}].{where}", overrides["target"]))
    for key, name in references:
        if name not in names:
            raise ConfigError(f"config key '{key}': no target named {name!r} in config key 'targets'; "
                              f"allowed: {', '.join(names)}")


def target_settings(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The settings of the target `name` (`targets.<name>`), as cft.targets.TargetSettings takes them."""
    return dict(config["targets"][name])


def evaluation_target(config: Mapping[str, Any]) -> dict[str, Any]:
    """The target the evaluations score against (`evaluate.target`): the datasets', the fidelity
    trie's and the baselines' fits'."""
    return target_settings(config, config["evaluate"]["target"])


def method_names(schema: Mapping[str, Any]) -> list[str]:
    """The training methods: the values `train.methods` allows (not the other keys of `train`)."""
    return list(schema["properties"]["train"]["properties"]["methods"]["items"]["enum"])


def _listing(values: Sequence[Any]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def _check_train_prompts(data: Mapping[str, Any]) -> None:
    """A training subset cannot be larger than the train split it is drawn from."""
    from cft.grids import build_splits

    size = data["train_prompts"]
    if size is None:
        return
    available = len(build_splits(data["train_families"], data["heldout_families"], data["selection"])["train"])
    families = len(data["train_families"])
    if size > available:
        raise ConfigError(f"config key 'data.train_prompts': {size} is more than the {available} prompts of the "
                          f"train split of data.train_families ({families} famil{'y' if families == 1 else 'ies'})")


def _check_evaluated_variants(config: Mapping[str, Any], all_methods: Sequence[str]) -> None:
    """Every method listed for evaluation must be trained, and every evaluated split must have prompts."""
    splits = config["evaluate"]["splits"]
    if "heldout" in splits and not config["data"]["heldout_families"]:
        raise ConfigError(f"config key 'evaluate.splits[{splits.index('heldout')}]': 'heldout' has no prompts "
                          "(data.heldout_families is empty)")
    from cft.variants import VARIANTS, accepts, variant_kind

    methods = config["train"]["methods"]
    known = [*all_methods, *VARIANTS]
    for index, variant in enumerate(config["evaluate"]["variants"]):
        if variant not in known:
            raise ConfigError(f"config key 'evaluate.variants[{index}]': {variant!r} is none of {_listing(known)} "
                              "(the training methods and the variants registered in cft.variants)")
        if variant in all_methods and variant not in methods:
            raise ConfigError(f"config key 'evaluate.variants[{index}]': {variant!r} is not trained "
                              f"(train.methods is {_listing(methods)})")
    for index, variant in enumerate(config["evaluate"]["generalization"]["variants"]):
        key = f"evaluate.generalization.variants[{index}]"
        if variant not in known:
            raise ConfigError(f"config key '{key}': {variant!r} is none of {_listing(known)}")
        if not accepts("generalization", variant_kind(variant, all_methods)):
            raise ConfigError(f"config key '{key}': {variant!r} has no exact metrics to score the groups with")


def _check_baselines(baselines: Mapping[str, Any]) -> None:
    temperature = baselines["temperature"]
    if temperature["min_temperature"] >= temperature["max_temperature"]:
        raise ConfigError(f"config key 'baselines.temperature.min_temperature': {temperature['min_temperature']} "
                          f"is not below baselines.temperature.max_temperature ({temperature['max_temperature']})")


def _check_transfer(evaluate: Mapping[str, Any]) -> None:
    from cft.transfer.choices import check_choice_categories
    from cft.transfer.openended import check_case_studies

    check_case_studies(evaluate["openended"]["case_studies"])
    check_choice_categories(evaluate["exact_choices"]["categories"])


def _check_noveltybench(evaluate: Mapping[str, Any], all_methods: Sequence[str]) -> None:
    """NoveltyBench's variants must be evaluated ones that ask the prompt as it is (not SSoT); its
    reward thresholds must ascend (a rating is 1 + the number of thresholds below the reward)."""
    from cft.variants import evaluated_variants

    novelty = evaluate["noveltybench"]
    evaluated = evaluate["variants"]
    plain = evaluated_variants("noveltybench", evaluated, all_methods)
    if not plain:
        raise ConfigError(f"config key 'evaluate.variants': {_listing(evaluated)} are all prompting protocols; "
                          "NoveltyBench (evaluate.noveltybench), MCQ and retention ask the plain prompt and "
                          "would have no variant (add base)")
    for index, variant in enumerate(novelty["variants"] or []):
        key = f"evaluate.noveltybench.variants[{index}]"
        if variant not in evaluated:
            raise ConfigError(f"config key '{key}': {variant!r} is not evaluated "
                              f"(evaluate.variants is {_listing(evaluated)})")
        if variant not in plain:
            raise ConfigError(f"config key '{key}': {variant!r} changes the prompt, which NoveltyBench asks as "
                              f"it is; allowed: the variants of evaluate.variants {_listing(plain)}")
    thresholds = novelty["reward"]["thresholds"]
    for index in range(1, len(thresholds or [])):
        if thresholds[index] <= thresholds[index - 1]:
            raise ConfigError(f"config key 'evaluate.noveltybench.reward.thresholds[{index}]': {thresholds[index]} "
                              f"is not above thresholds[{index - 1}] ({thresholds[index - 1]}); "
                              "the thresholds must be strictly ascending")


def _check_retention(retention: Mapping[str, Any]) -> None:
    from cft.retention.perplexity import STANDIN_SLICES
    from cft.retention.tasks import TASKS

    tinybench = retention["tinybench"]
    for index, task in enumerate(tinybench["tasks"]):
        if task not in TASKS:
            raise ConfigError(f"config key 'evaluate.retention.tinybench.tasks[{index}]': unknown task {task!r}; "
                              f"allowed: {', '.join(TASKS)}")
    # Limits of registered tasks that are not listed are allowed: a --configfile that lists other
    # tasks is merged with the default's limits.
    for task in tinybench["limits"]:
        if task not in TASKS:
            raise ConfigError(f"config key 'evaluate.retention.tinybench.limits.{task}': unknown task {task!r}; "
                              f"allowed: {', '.join(TASKS)}")
    perplexity = retention["perplexity"]
    if perplexity["stride"] > perplexity["context_length"]:
        raise ConfigError(f"config key 'evaluate.retention.perplexity.stride': {perplexity['stride']} is above "
                          f"evaluate.retention.perplexity.context_length ({perplexity['context_length']}); "
                          "windows would skip tokens")
    if perplexity["root"] is None:
        for index, name in enumerate(perplexity["slices"]):
            if name not in STANDIN_SLICES:
                raise ConfigError(f"config key 'evaluate.retention.perplexity.slices[{index}]': {name!r} is not a "
                                  f"slice of the packaged stand-in (evaluate.retention.perplexity.root is null); "
                                  f"allowed: {', '.join(STANDIN_SLICES)}")


def _check_model_overrides(index: int, overrides: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Per-model training overrides must use the keys, types and ranges of the `train` section."""
    train_schema = dict(schema["properties"]["train"])
    train_schema["required"] = []
    train_schema["$defs"] = schema["$defs"]
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(train_schema).iter_errors(dict(overrides))
    )
    if error is not None:
        raise ConfigError(_describe(error, train_schema, ["models", index, "train"]))


def _check_families(data: Mapping[str, Any]) -> None:
    from cft.families import FAMILIES

    known = list(FAMILIES)
    for key in ("train_families", "heldout_families"):
        for index, family_id in enumerate(data[key]):
            if family_id not in FAMILIES:
                raise ConfigError(
                    f"config key 'data.{key}[{index}]': unknown family {family_id!r}; allowed: {', '.join(known)}"
                )
    overlap = sorted(set(data["train_families"]) & set(data["heldout_families"]))
    if overlap:
        raise ConfigError(
            f"config key 'data.heldout_families': {', '.join(overlap)} also listed in data.train_families; "
            "a held-out family must not be trained on"
        )


def _check_models(models: Sequence[Mapping[str, Any]]) -> None:
    names = [model["name"] for model in models]
    for index, name in enumerate(names):
        if names.index(name) != index:
            raise ConfigError(f"config key 'models[{index}].name': model name {name!r} is used twice")
    for index, model in enumerate(models):
        source = model["source"]
        if source.startswith("packaged:"):
            from cft.models import PACKAGED_MODELS

            packaged = source.removeprefix("packaged:")
            if packaged not in PACKAGED_MODELS:
                raise ConfigError(
                    f"config key 'models[{index}].source': unknown packaged model {packaged!r}; "
                    f"allowed: {', '.join('packaged:' + p for p in PACKAGED_MODELS)}"
                )


def model_entry(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    for model in config["models"]:
        if model["name"] == name:
            return model
    raise ConfigError(f"no model named {name!r} in config key 'models'")


def train_settings(config: Mapping[str, Any], model: str, variant: str) -> dict[str, Any]:
    """The training settings of one (model, trained variant): common, then method, then model
    overrides, then (for an ablation variant such as `soft_d2_b4096`) the ablation's overrides;
    `target` is the settings of the target they name, with the keys of it the ablation varies."""
    ablation = ablation_variants(config).get(variant)
    method = ablation["method"] if ablation else variant
    overrides = model_entry(config, model).get("train", {})
    settings: dict[str, Any] = {"method": method, "seed": config["seed"]}
    settings.update(config["train"].get("common", {}))
    settings.update(config["train"].get(method, {}))
    settings.update(overrides.get("common", {}))
    settings.update(overrides.get(method, {}))
    target_overrides: dict[str, Any] = {}
    if ablation:
        for key, value in ablation["overrides"].items():
            (target_overrides if key in TARGET_KEYS else settings)[key] = value
    settings["target"] = {**target_settings(config, settings["target"]), **target_overrides}
    return settings


def curve_methods(config: Mapping[str, Any]) -> list[str]:
    """The trained and evaluated methods whose adapters are also scored along training
    (`evaluate.curve.methods`); none where no split of `evaluate.curve.splits` is evaluated."""
    trained, evaluated = config["train"]["methods"], config["evaluate"]["variants"]
    if not curve_splits(config):
        return []
    return [m for m in config["evaluate"]["curve"]["methods"] if m in trained and m in evaluated]


def curve_splits(config: Mapping[str, Any]) -> list[str]:
    """The test splits the curve's snapshots are scored on: those of `evaluate.curve.splits` (null =
    all) that `evaluate.splits` evaluates, in its order."""
    chosen = config["evaluate"]["curve"].get("splits")
    return [s for s in config["evaluate"]["splits"] if chosen is None or s in chosen]


def adapter_settings(config: Mapping[str, Any], model: str, variant: str) -> dict[str, Any]:
    """What a training job of (model, variant) runs with: `train_settings`, plus the snapshot count
    of the fidelity curve for its methods (run control: it does not change the adapter)."""
    settings = train_settings(config, model, variant)
    if variant in curve_methods(config):
        settings["snapshots"] = config["evaluate"]["curve"]["snapshots"]
    return settings


def ablation_variants(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Expand `train.ablations` into named training variants: name -> {method, overrides, models}.

    An ablation entry is a base method, a name template over the varied keys (keys of the method's
    section, or of the target it names: decimals, max_bins, quantile_low, quantile_high), and either
    a `grid` (every combination of the listed values) or explicit `settings` (one variant each), e.g.
    {method: soft, name: "soft_d{decimals}_b{max_bins}", grid: {decimals: [1, 2], max_bins: [1001]}}
    gives `soft_d1_b1001` and `soft_d2_b1001`. `models` (default: all) limits which models train it.
    """
    variants: dict[str, dict[str, Any]] = {}
    all_models = [model["name"] for model in config["models"]]
    for entry in config["train"].get("ablations", []):
        for overrides in _ablation_overrides(entry):
            name = entry["name"].format(**overrides)
            variants[name] = {"method": entry["method"], "overrides": overrides,
                              "models": list(entry.get("models") or all_models)}
    return variants


def _ablation_overrides(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The override sets of one ablation entry: every combination of its grid, or its settings list."""
    if "grid" in entry:
        keys = list(entry["grid"])
        return [dict(zip(keys, values)) for values in itertools.product(*entry["grid"].values())]
    return [dict(settings) for settings in entry.get("settings", [])]


def _check_ablations(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Each ablation names a known method, varies only keys of that method's section or of its target,
    and expands to new, unique variant names that fit in result paths."""
    train_schema = schema["properties"]["train"]["properties"]
    models = {model["name"] for model in config["models"]}
    seen: dict[str, int] = {}
    for index, entry in enumerate(config["train"].get("ablations", [])):
        key = f"train.ablations[{index}]"
        method = entry["method"]
        if method not in method_names(schema):
            raise ConfigError(f"config key '{key}.method': unknown method {method!r}; "
                              f"allowed: {', '.join(method_names(schema))}")
        if ("grid" in entry) == ("settings" in entry):
            raise ConfigError(f"config key '{key}': give exactly one of 'grid' and 'settings'")
        for model in entry.get("models") or []:
            if model not in models:
                raise ConfigError(f"config key '{key}.models': no model named {model!r} in config key 'models'")
        method_schema = {**train_schema[method], "$defs": schema["$defs"]}
        target_schema = {**schema["$defs"]["target"], "$defs": schema["$defs"]}
        for position, overrides in enumerate(_ablation_overrides(entry)):
            # A grid's values are checked per combination; the key names the varied setting.
            where = ["grid"] if "grid" in entry else ["settings", position]
            target_part = {k: v for k, v in overrides.items() if k in TARGET_KEYS}
            method_part = {k: v for k, v in overrides.items() if k not in TARGET_KEYS}
            for part, part_schema in ((method_part, method_schema), (target_part, target_schema)):
                error = jsonschema.exceptions.best_match(
                    jsonschema.Draft202012Validator(part_schema).iter_errors(copy.deepcopy(part)))
                if error is not None:
                    message = _describe(error, part_schema, ["train", "ablations", index, *where])
                    if error.validator in ("additionalProperties", "unevaluatedProperties"):
                        message += f"; or of its target: {', '.join(TARGET_KEYS)}"
                    raise ConfigError(message)
            try:
                name = entry["name"].format(**overrides)
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(f"config key '{key}.name': {entry['name']!r} cannot be filled from "
                                  f"{sorted(overrides)} ({exc!r})") from None
            if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", name):
                raise ConfigError(f"config key '{key}.name': variant name {name!r} must use lowercase letters, "
                                  "digits and '_' (it becomes a result folder)")
            if name == "base" or name in train_schema or name in seen:
                raise ConfigError(f"config key '{key}.name': variant name {name!r} is already used "
                                  f"({'by ' + f'train.ablations[{seen[name]}]' if name in seen else 'by a method'})")
            seen[name] = index
