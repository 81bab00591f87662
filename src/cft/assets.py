"""Preflight: what a run needs from outside the repository, checked before its first job.

A workflow that trains for hours must not find out at its last evaluation that the PALOMA folder
was never downloaded. `missing_assets` lists every such problem of a config at once, each with what
is missing and how to provide it; the Snakefile's `onstart` handler stops the run on any of them
(dry runs skip it, so the paper config can be listed on a machine that has none of its assets).

Hub ids cannot be checked without the network: they count as missing only in offline mode
(HF_HUB_OFFLINE=1) when they are not in the local cache; otherwise `prepare_model`, the first job of
each model, fails with `ModelUnavailable` if the download does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from cft.models import PACKAGED_MODELS


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _hub_id_problem(key: str, repo_id: str) -> str | None:
    """A hub id that offline mode cannot load (not a local folder, not in the hub cache)."""
    if Path(repo_id).expanduser().is_dir() or not _hub_offline():
        return None
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return None
    return (f"{key}: {repo_id!r} is not a local folder and not in the Hugging Face cache, and HF_HUB_OFFLINE is "
            f"set. Download it where the hub is reachable (`hf download {repo_id}`) into the cache HF_HOME "
            f"points at, or set {key} to a local folder with the checkpoint.")


def _model_problem(index: int, entry: Mapping[str, Any]) -> str | None:
    key, source = f"models[{index}].source", entry["source"]
    if source.startswith("packaged:"):
        name = source.removeprefix("packaged:")
        if name not in PACKAGED_MODELS:
            return f"{key}: unknown packaged model {name!r}; known: " + ", ".join(
                "packaged:" + known for known in PACKAGED_MODELS)
        packaged = PACKAGED_MODELS[name]
        try:
            metadata.distribution(packaged.distribution)
        except metadata.PackageNotFoundError:
            return f"{key}: {source} needs the {packaged.distribution} package; install it with: {packaged.install}"
        return None
    return _hub_id_problem(key, source)


def _path_problem(key: str, path: str | None, what: str, how: str, *, folder: bool) -> str | None:
    if path is None:
        return None
    found = Path(path).expanduser().is_dir() if folder else Path(path).expanduser().is_file()
    return None if found else f"{key}: {what} {path!r} does not exist. {how}"


def _retention_problems(retention: Mapping[str, Any]) -> list[str]:
    problems = []
    tinybench = retention.get("tinybench", {})
    problems.append(_path_problem(
        "evaluate.retention.tinybench.irt_parameters", tinybench.get("irt_parameters"),
        "the gp-IRT parameter file", "Download tinyBenchmarks.pkl from the tinyBenchmarks repository "
        "(felipemaiapolo/tinyBenchmarks) to that path, or set the key to null for raw accuracy only.",
        folder=False))
    problems.append(_path_problem(
        "evaluate.retention.tinybench.data_dir", tinybench.get("data_dir"), "the task data folder",
        "Write the tinyBenchmarks tasks there as <task>.jsonl, or set the key to null to load them from the hub.",
        folder=True))
    perplexity = retention.get("perplexity", {})
    root = perplexity.get("root")
    if root is not None:
        how = ("PALOMA is gated: accept its license at https://huggingface.co/datasets/allenai/paloma, download "
               "it (`hf download allenai/paloma --repo-type dataset --local-dir <root>`), or set the key to null "
               "for the packaged stand-in text.")
        problem = _path_problem("evaluate.retention.perplexity.root", root, "the PALOMA folder", how, folder=True)
        if problem:
            problems.append(problem)
        else:
            split = perplexity.get("split", "test")
            for slice_name in perplexity.get("slices", []):
                if not any((Path(root).expanduser() / slice_name / split).glob("*.jsonl.gz")):
                    problems.append(f"evaluate.retention.perplexity.slices: {root}/{slice_name}/{split}/*.jsonl.gz "
                                    f"does not exist. {how}")
    return [p for p in problems if p]


def _judge_problems(noveltybench: Mapping[str, Any]) -> list[str]:
    problems = []
    for role in ("classifier", "reward"):
        judge = noveltybench.get(role, {})
        if judge.get("kind", "stand_in") != "stand_in" and judge.get("path"):
            problems.append(_hub_id_problem(f"evaluate.noveltybench.{role}.path", judge["path"]))
    return [p for p in problems if p]


def missing_assets(config: Mapping[str, Any]) -> list[str]:
    """Every external asset the validated config needs and this machine lacks, one message each."""
    problems = [_model_problem(i, entry) for i, entry in enumerate(config["models"])]
    evaluate = config.get("evaluate", {})
    problems += _retention_problems(evaluate.get("retention", {}))
    problems += _judge_problems(evaluate.get("noveltybench", {}))
    return [p for p in problems if p]
