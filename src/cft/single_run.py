"""`cft train`: one adapter from a config file, without the workflow.

It runs the jobs that the workflow's `all` runs before `train_adapter` (make_split for the train
split, select_train_subset, prepare_model), then `train_adapter` itself, through the same package
functions the rules' scripts call, with the same settings (`cft.config.adapter_settings`) and the
same layout under `out_dir` as under `results/`. A file whose content would not change is left as it
is, so that a workflow run on the same folder finds its jobs up to date:

    <out>/datasets/train.jsonl, train_subset.jsonl
    <out>/models/<model>.json
    <out>/checkpoints/<model>/<method>/            (resumed when rerun)
    <out>/adapters/<model>/<method>/adapter/, snapshots/, train_log.csv, train_config.json
    <out>/tensorboard/<model>/<method>/           (with train.report_to: [tensorboard])
"""

from __future__ import annotations

import filecmp
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cft.config import ConfigError, ablation_variants, adapter_settings, evaluation_target, load_config, model_entry

log = logging.getLogger(__name__)


def write_unless_unchanged(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)`, then `tmp` replaces `path` only where the content differs (mtime kept otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new")
    write(tmp)
    if path.exists() and filecmp.cmp(tmp, path, shallow=False):
        tmp.unlink()
    else:
        os.replace(tmp, path)


def train_one_adapter(config_paths: Sequence[str], model: str, method: str, out_dir: str, *,
                      threads: int = 1, cache_dir: str = "resources/models") -> Path:
    """Train the adapter of (model, method) under `out_dir`; return the adapter folder."""
    import torch

    from cft.datasets import write_split, write_train_subset
    from cft.launch import tensorboard_dir, train_adapter_job
    from cft.models import prepare_model
    from cft.training.methods import METHODS

    config = load_config(*config_paths)
    entry = model_entry(config, model)
    trainable = sorted(set(METHODS) | set(ablation_variants(config)))
    if method not in trainable:
        raise ConfigError(f"--method {method!r} is not a training method or ablation of this config; "
                          f"one of {', '.join(trainable)}")
    out = Path(out_dir)
    data = config["data"]

    start = time.perf_counter()
    train_split = out / "datasets" / "train.jsonl"
    write_unless_unchanged(train_split, lambda path: write_split(
        split="train", out_path=path, train_families=data["train_families"],
        heldout_families=data["heldout_families"], selection=data["selection"], target=evaluation_target(config)))
    prompts = out / "datasets" / "train_subset.jsonl"
    write_unless_unchanged(prompts, lambda path: write_train_subset(train_split, path, size=data["train_prompts"],
                                                                    seed=config["seed"]))
    log.info("training prompts: %s (%.1f s)", prompts, time.perf_counter() - start)

    start = time.perf_counter()
    record = out / "models" / f"{model}.json"
    write_unless_unchanged(record, lambda path: prepare_model(entry, cache_dir=cache_dir, out_path=path))
    log.info("model record: %s (%.1f s)", record, time.perf_counter() - start)

    device = None if config["device"] == "auto" else config["device"]
    uses_cuda = device != "cpu" and torch.cuda.is_available()
    adapter_root = out / "adapters" / model / method
    start = time.perf_counter()
    train_adapter_job(
        launcher=config["train"].get("launcher", {"kind": "none"}),
        gpus=torch.cuda.device_count() if uses_cuda else 0,
        model_record=str(record), prompts_path=str(prompts),
        settings=adapter_settings(config, model, method),
        checkpoint_dir=str(out / "checkpoints" / model / method),
        adapter_dir=str(adapter_root / "adapter"), log_csv=str(adapter_root / "train_log.csv"),
        record_path=str(adapter_root / "train_config.json"), snapshots_dir=str(adapter_root / "snapshots"),
        threads=threads, device=device,
        tensorboard_dir=tensorboard_dir(config, model, method, results=str(out)),
    )
    log.info("adapter: %s (training %.1f s)", adapter_root / "adapter", time.perf_counter() - start)
    return adapter_root / "adapter"
