"""Fidelity along training: the exact metrics of an adapter's snapshots, step by step.

The trainer keeps the adapter at `snapshots` evenly spaced steps (`cft.training.trainer`); each snapshot is
scored by the same code as the final adapter (`cft.evaluation.fidelity.evaluate_fidelity`), exactly
and without sampling, on the same test splits. The table then joins three sources per (model,
variant): base as step 0 (a LoRA adapter starts as the base model: its B matrices are zero), the
snapshots, and the final adapter's exact metrics from its fidelity evaluation at the last step.

Each step also carries the tokens seen (the sum of the `tokens` column of train_log.csv, prompt and
answer tokens fed) and an estimate of the training FLOPs: (4 N + 6 n) per token fed, with N the frozen
weights of the decoder's linear layers and n the LoRA weights (forward 2N + 2n, backward 2N + 4n:
activation gradients through every matmul, weight gradients only for LoRA). Attention scores, the LM
head and elementwise work are left out, so it is a lower bound; `bench/common.py` has the full count
for a given batch shape.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors import safe_open

from cft.evaluation.aggregate import summarize
from cft.evaluation.comparisons import COMPARISON_METRICS
from cft.evaluation.fidelity import FidelitySettings, evaluate_fidelity
from cft.io import read_json, write_csv

log = logging.getLogger(__name__)

# The metrics of the curve: the exact headline metrics of the comparisons.
CURVE_METRICS = tuple(COMPARISON_METRICS)
CURVE_COLUMNS = ["model", "variant", "step", "tokens_seen", "training_flops", "split", "metric", "median",
                 "median_ci_low", "median_ci_high", "n_families", "n_families_missing", "n_missing"]


def _tensor_sizes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in the folder's safetensors files, read from their headers."""
    sizes = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                sizes[name] = tuple(handle.get_slice(name).get_shape())
    if not sizes:
        raise FileNotFoundError(f"no .safetensors weights in {folder}")
    return sizes


def flops_per_token(model_dir: str | Path, adapter_dir: str | Path) -> float:
    """4 N + 6 n (see the module docstring): N the decoder layers' 2-D weights, n the LoRA weights."""
    base = sum(int(np.prod(shape)) for name, shape in _tensor_sizes(Path(model_dir)).items()
               if ".layers." in name and name.endswith(".weight") and len(shape) == 2)
    lora = sum(int(np.prod(shape)) for name, shape in _tensor_sizes(Path(adapter_dir)).items() if "lora_" in name)
    return float(4 * base + 6 * lora)


def step_record(train_log_csv: str | Path, steps: Sequence[int], per_token: float) -> pd.DataFrame:
    """step, tokens_seen, training_flops of each requested step (0 included as the start)."""
    log_frame = pd.read_csv(train_log_csv)
    cumulative = dict(zip(log_frame["step"], log_frame["tokens"].cumsum()))
    missing = [s for s in steps if s and s not in cumulative]
    if missing:
        raise ValueError(f"{train_log_csv} has no row for step(s) {missing}")
    tokens = [int(cumulative[s]) if s else 0 for s in steps]
    return pd.DataFrame({"step": list(steps), "tokens_seen": tokens,
                         "training_flops": [t * per_token for t in tokens]})


def evaluate_curve(*, model_record_path: str | Path, snapshots_dir: str | Path, adapter_dir: str | Path, variant: str,
                   test_sets: Mapping[str, str | Path], settings: FidelitySettings, train_log_csv: str | Path,
                   prompts_csv: str | Path, steps_csv: str | Path, device: str = "cpu",
                   threads: int | None = None) -> pd.DataFrame:
    """Score every snapshot of one (model, variant) exactly; write its per-prompt rows with a `step`
    column, and the steps (snapshots, the final step and 0) with their tokens seen and FLOPs (the
    LoRA weight count is read from the final adapter ``adapter_dir``)."""
    snapshots_dir = Path(snapshots_dir)
    index = read_json(snapshots_dir / "steps.json")
    record = read_json(model_record_path)
    exact_only = replace(settings, num_samples=0, exact=True)
    frames = []
    with tempfile.TemporaryDirectory() as scratch:
        for step in index["steps"]:
            out = Path(scratch) / f"step_{step:06d}"
            frame = evaluate_fidelity(
                model_record_path=model_record_path, adapter_dir=snapshots_dir / f"step_{step:06d}",
                variant=variant, test_sets=test_sets, settings=exact_only, prompts_csv=out / "prompts.csv",
                samples_jsonl=out / "samples.jsonl", distributions_json=out / "distributions.json",
                device=device, threads=threads)
            log.info("%s step %d: %d prompts scored", variant, step, len(frame))
            frames.append(frame.assign(step=step))
    columns = ["model", "variant", "step", "split", "family_id", "distribution_id", *CURVE_METRICS, "exact_seconds"]
    prompts = (pd.concat(frames, ignore_index=True).reindex(columns=columns) if frames
               else pd.DataFrame(columns=columns))
    per_token = flops_per_token(record["path"], adapter_dir)
    steps = step_record(train_log_csv, [0, *index["steps"], index["total_steps"]], per_token)
    write_csv(prompts_csv, prompts)
    write_csv(steps_csv, steps.assign(model=record["name"], variant=variant))
    return prompts


def curve_table(curve_prompts: Sequence[str | Path], curve_steps: Sequence[str | Path],
                fidelity_prompts_csv: str | Path, out_csv: str | Path, *, n_boot: int = 1000,
                seed: int = 0) -> pd.DataFrame:
    """`fidelity_curve.csv`: per model, variant, step, split and metric, the median over families of
    the family means with its 95% bootstrap interval (`cft.evaluation.aggregate.summarize`), on the
    splits the snapshots were scored on."""
    steps = pd.concat([pd.read_csv(path) for path in curve_steps], ignore_index=True)
    snapshots = pd.concat([pd.read_csv(path) for path in curve_prompts], ignore_index=True)
    # The snapshots may cover fewer splits than the fidelity table (evaluate.curve.splits): base and
    # the final adapter join on those splits only, so every line of the curve has all its points.
    fidelity = pd.read_csv(fidelity_prompts_csv)
    fidelity = fidelity[fidelity["split"].isin(set(snapshots["split"]))]
    parts = [snapshots]
    for (model, variant), group in steps.groupby(["model", "variant"], sort=True):
        final = fidelity[(fidelity["model"] == model) & (fidelity["variant"] == variant)]
        if final.empty:
            raise ValueError(f"{fidelity_prompts_csv} has no rows of {model}/{variant}, whose curve ends there")
        parts.append(final.assign(step=int(group["step"].max())))
    base = fidelity[fidelity["variant"] == "base"].assign(step=0)
    parts.append(base)
    rows = pd.concat([p.reindex(columns=snapshots.columns) for p in parts], ignore_index=True)
    long = summarize(rows, CURVE_METRICS, group_cols=("model", "variant", "step", "split"), n_boot=n_boot, seed=seed)
    base_steps = pd.DataFrame({"model": base["model"].unique(), "variant": "base", "step": 0, "tokens_seen": 0,
                               "training_flops": 0.0})
    known = pd.concat([steps[["model", "variant", "step", "tokens_seen", "training_flops"]], base_steps])
    table = long.merge(known.drop_duplicates(["model", "variant", "step"]), on=["model", "variant", "step"],
                       how="left", validate="many_to_one")
    table = table.sort_values(["model", "variant", "split", "metric", "step"]).reindex(columns=CURVE_COLUMNS)
    write_csv(out_csv, table)
    return table
