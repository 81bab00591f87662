"""The run's manifest, results/manifest.json: what produced the results, and a hash of each result.

    git        commit, dirty flag and the changed files (null where the workflow is not a git checkout)
    config     the merged, validated config and the sha256 of its canonical JSON
    packages   versions of the packages that compute results, Python, platform
    machine    CPU model, cores, the cores Snakemake ran with, torch threads, GPUs and CUDA
    models     per model: its record and the sha256 of every file of its folder
    data       sha256 of every data file the config reads: the generated prompt splits, the packaged
               stand-ins and vendored sets, and the external assets it names
    tables     sha256 of every table under results/tables/

Two runs on unchanged inputs give the same `tables` (tests/test_provenance.py). Files from the Hugging
Face cache are hashed by name: the hub stores each large file as a blob named by its sha256, verified
on download, so a 54 GB model is not read again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cft.io import environment_record, read_json, write_json

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
_SHA256_NAME = re.compile(r"[0-9a-f]{64}")


def sha256_file(path: str | os.PathLike) -> str:
    path = Path(path)
    blob = path.resolve()
    if path.is_symlink() and _SHA256_NAME.fullmatch(blob.name) and blob.parent.name == "blobs":
        return blob.name
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(root: str | os.PathLike) -> dict[str, str]:
    """sha256 of every file under `root`, by path relative to it (hidden files and folders skipped)."""
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    return {str(p.relative_to(root)): sha256_file(p) for p in files}


def git_state(repo: str | os.PathLike) -> dict[str, Any] | None:
    """HEAD and whether tracked or untracked, not ignored, files differ from it; None outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "dirty": bool(changed), "changed_files": changed}


def cpu_name() -> str:
    """The processor's model name (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine_record(cores: int | None) -> dict[str, Any]:
    import torch

    cpu = cpu_name()
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"cpu": cpu, "cpu_cores": os.cpu_count(), "snakemake_cores": cores, "torch_threads": torch.get_num_threads(),
            "gpus": gpus, "cuda": torch.version.cuda if gpus else None}


def data_assets(config: Mapping[str, Any], datasets: Sequence[str | os.PathLike]) -> dict[str, str]:
    """sha256 of every data file the config reads, by path (package files relative to the package)."""
    assets = {str(path): sha256_file(path) for path in datasets}
    packaged = [PACKAGE_DIR / "retention" / "data", PACKAGE_DIR / "baselines" / "data"]
    for folder in packaged:
        assets.update({f"cft/{folder.relative_to(PACKAGE_DIR)}/{name}": digest
                       for name, digest in sha256_tree(folder).items()})
    evaluate = config.get("evaluate", {})
    if "noveltybench" in evaluate:
        from cft.transfer.noveltybench import PROMPT_SET_FILES

        for prompt_set in evaluate["noveltybench"]["prompt_sets"]:
            path = Path("data/noveltybench") / PROMPT_SET_FILES[prompt_set]
            assets[str(path)] = sha256_file(path)
    retention = evaluate.get("retention", {})
    external = [retention.get("tinybench", {}).get("data_dir"), retention.get("tinybench", {}).get("irt_parameters"),
                retention.get("perplexity", {}).get("root")]
    for path in filter(None, external):
        path = Path(path).expanduser()
        if path.is_file():
            assets[str(path)] = sha256_file(path)
        else:
            assets.update({f"{path}/{name}": digest for name, digest in sha256_tree(path).items()})
    return assets


def judge_models(config: Mapping[str, Any]) -> dict[str, str]:
    """NoveltyBench's judges: the folder of each one the config uses."""
    noveltybench = config.get("evaluate", {}).get("noveltybench")
    if not noveltybench:
        return {}
    from cft.transfer.similarity import packaged_embedder_dir

    folders = {}
    for role in ("classifier", "reward"):
        judge = noveltybench[role]
        if judge.get("path") and Path(judge["path"]).expanduser().is_dir():
            folders[f"noveltybench_{role}"] = str(Path(judge["path"]).expanduser())
        elif judge.get("kind", "stand_in") == "stand_in" and role == "classifier":
            folders["noveltybench_classifier_stand_in"] = str(packaged_embedder_dir())
    return folders


def write_manifest(*, config: Mapping[str, Any], model_records: Sequence[str | os.PathLike],
                   datasets: Sequence[str | os.PathLike], tables: Sequence[str | os.PathLike],
                   out_path: str | os.PathLike, cores: int | None = None, repo: str | os.PathLike = ".") -> dict:
    """Write results/manifest.json (see the module docstring) and return it."""
    from cft.config import validate_config

    start = time.perf_counter()
    config = validate_config(config)
    models = {}
    for path in model_records:
        record = read_json(path)
        models[record["name"]] = {"record": record, "files": sha256_tree(record["path"])}
    for name, folder in judge_models(config).items():
        models[name] = {"record": {"path": folder}, "files": sha256_tree(folder)}
    log.info("hashed %d model folders in %.1f s", len(models), time.perf_counter() - start)
    manifest = {
        "git": git_state(repo),
        "config": config,
        "config_sha256": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
        **environment_record(),
        "machine": machine_record(cores),
        "models": models,
        "data": data_assets(config, datasets),
        "tables": {str(path): sha256_file(path) for path in sorted(map(str, tables))},
    }
    write_json(out_path, manifest)
    log.info("wrote %s: %d tables, %d data files, %d models (%.1f s)", out_path, len(manifest["tables"]),
             len(manifest["data"]), len(models), time.perf_counter() - start)
    return manifest
