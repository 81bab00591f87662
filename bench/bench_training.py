"""Training step speed: this repository's soft and hard steps against the naive step, in one run.

Setup: the model (default the real SmolLM2-135M-Instruct, fp32 on CPU), batch 8 (the paper's),
LoRA r16/alpha32 on q/k/v/o, AdamW, prompts from a family-balanced subset of the train split. Each
method runs in its own process (`--method`), so that its peak RSS is its own.

Per method it alternates, batch by batch, two steps that compute the same loss on the same batch:

* ours: `CalibrationTrainer.training_step`, which reads the decoder's hidden states at the L + 1
  answer positions only and reads just the scored tokens' log-probabilities there, normalized over
  the vocabulary in blocks (`cft.training.losses.answer_hidden`, `head_log_probs`);
* naive: what the paper's code does, the model's plain forward with full-vocabulary logits at every
  position of every row, then the same loss (for hard targets: cross-entropy over the whole sequence
  with the prompt masked, as `model(input_ids, labels=...)` computes it).

Both include target building (also timed alone), backward and the AdamW update. Before timing, both
losses are computed on the first batch and must agree (printed). Reported: median seconds per step (the first
step of each kind is warm-up and left out), real tokens per second, achieved FLOP/s (FLOPs from
`bench.common.training_step_flops`, formula documented there) as a fraction of the dense matmul
peak measured in this run, the naive/ours ratio, and the share of a batch's tokens that is a prefix
common to all rows (the chat template's system turn and the words up to the family name), which
our step computes once per batch (`cft.training.losses.shared_prefix_length`) and the naive step
once per row.

Goals (issue #9): soft step at most half the naive (paper-code) step; training FLOP/s at least half
the matmul peak. Reference figures on the 2-core CPU: paper code 6.0 s per soft and 4.4 s per hard
step; dense fp32 matmul peak 130-190 GFLOP/s.

    .venv/bin/python -m bench.bench_training [--steps 6] [--model ...] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

from cft.training.losses import log_probs_at, shared_prefix_length, soft_target_kl

from bench.common import (
    Goal,
    add_model_arguments,
    is_reference_setup,
    matmul_peak_gflops,
    model_shape,
    print_goals,
    print_header,
    synchronize,
    training_step_flops,
)

PAPER_SECONDS_PER_STEP = {"soft": 6.0, "hard": 4.4}  # the paper's code, 2-core CPU (RESULTS.md)
MIN_PEAK_FRACTION = 0.5
MAX_SOFT_RATIO = 0.5
BATCH_SIZE = 8


def select_prompts(count: int, seed: int = 11):
    from cft.config import load_config
    from cft.datasets import family_balanced_subset
    from cft.grids import build_splits

    data = load_config("config/config.yaml")["data"]
    specs = build_splits(data["train_families"], data["heldout_families"], data["selection"])["train"]
    rows = family_balanced_subset([{"family_id": s.family_id, "spec": s} for s in specs], count, seed)
    return [row["spec"] for row in rows]


def naive_loss(trainer, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The trainer's loss computed the paper's way: full-vocabulary logits at every position."""
    logits = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    if trainer.method == "soft":
        picked = logits.gather(1, batch["positions"].unsqueeze(-1).expand(-1, -1, logits.size(-1)))
        children = log_probs_at(picked, batch["target_ids"], trainer.config.temperature)
        return soft_target_kl(children, batch["target_ids"], batch["target_probs"], batch["step_mask"],
                              trainer.config.epsilon)
    # Labels over the whole sequence: -100 on the prompt and padding, the answer tokens where the
    # gathered step reads them. Every position's logits enter the cross-entropy.
    labels = torch.full(batch["input_ids"].shape, -100, dtype=torch.long, device=logits.device)
    rows = torch.arange(labels.size(0), device=labels.device).unsqueeze(1).expand_as(batch["positions"])
    steps = batch["step_mask"]
    labels[rows[steps], batch["positions"][steps]] = batch["labels"][steps]
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)


def make_batch(trainer, batch_items) -> dict[str, torch.Tensor]:
    examples = [trainer.build_example(trainer.items[item], seed) for item, seed in batch_items]
    return {k: v.to(trainer.device) for k, v in trainer.collate(examples).items()}


def naive_step(trainer, batch_items) -> float:
    """training_step with the naive loss: build targets, forward, backward, AdamW update."""
    start = time.perf_counter()
    batch = make_batch(trainer, batch_items)
    loss = naive_loss(trainer, batch)
    loss.backward()
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.item()  # waits for the device
    return time.perf_counter() - start


def make_trainer(method: str, args: argparse.Namespace, steps: int):
    """The method's trainer (LoRA on the model of ``args``, in this process, at ``args.threads``) and
    ``steps`` batches of the first epoch, one step each."""
    from cft.models import load_model, load_tokenizer, resolve_model_dir
    from cft.training import TrainConfig
    from cft.training.data import epoch_batches
    from cft.training.methods import get_method

    torch.set_num_threads(args.threads)
    model_dir = resolve_model_dir(args.model, args.cache_dir)
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, args.dtype, args.device)
    specs = select_prompts(args.prompts)
    config = TrainConfig(method=method, epochs=-(-steps * BATCH_SIZE // len(specs)), batch_size=BATCH_SIZE,
                         lr=2e-4, samples_per_prompt=1, checkpoint_every=10_000)
    with tempfile.TemporaryDirectory() as out:
        trainer = get_method(method).trainer(model, tokenizer, specs, config, out, progress=False)
    batches = epoch_batches(trainer.family_ids, seed=config.seed, epoch=0, batch_size=BATCH_SIZE)
    return trainer, [batches[i % len(batches)] for i in range(steps)]


def run_method(method: str, args: argparse.Namespace) -> dict:
    """Time `args.steps` steps of each kind for one method in this process."""
    needed = args.steps + 1  # one warm-up step
    trainer, batches = make_trainer(method, args, needed)

    # Same batch, same weights, no dropout: the naive loss must equal ours (before any update).
    batch = make_batch(trainer, batches[0])
    trainer.model.eval()
    with torch.no_grad():
        ours, naive = trainer.compute_loss(batch).item(), naive_loss(trainer, batch).item()
    trainer.model.train()

    shape = model_shape(trainer.model)
    peak = matmul_peak_gflops(args.matmul_size, device=args.device, dtype=trainer.base_dtype)
    ours_rows, naive_seconds, target_seconds, prefix_shares = [], [], [], []
    ours_flops = naive_flops = 0.0
    for index, items in enumerate(batches):
        start = time.perf_counter()
        batch = make_batch(trainer, items)  # the shapes, and what building targets costs
        building = time.perf_counter() - start
        width, depth = batch["input_ids"].shape[1], batch["positions"].shape[1]
        synchronize(args.device)
        row = trainer.training_step(items, epoch=0)
        seconds = naive_step(trainer, items)
        if index == 0:
            continue  # warm-up
        ours_rows.append(row)
        naive_seconds.append(seconds)
        target_seconds.append(building)
        prefix = shared_prefix_length(batch["input_ids"], batch["attention_mask"], batch["positions"])
        ours_flops += training_step_flops(shape, len(items), width, len(items) * depth, prefix)
        naive_flops += training_step_flops(shape, len(items), width, len(items) * width)
        prefix_shares.append((len(items) - 1) * prefix / row["tokens"])

    ours_seconds = [row["seconds"] for row in ours_rows]
    tokens = sum(row["tokens"] for row in ours_rows)
    result = {
        "method": method,
        "model": args.model,
        "device": args.device,
        "dtype": str(trainer.base_dtype).removeprefix("torch."),
        "steps_timed": len(ours_rows),
        "loss_ours_vs_naive_first_batch": [round(ours, 6), round(naive, 6)],
        "seconds_per_step_ours_median": round(statistics.median(ours_seconds), 3),
        "seconds_per_step_naive_median": round(statistics.median(naive_seconds), 3),
        "naive_over_ours": round(sum(naive_seconds) / sum(ours_seconds), 2),
        "target_building_seconds_per_step_median": round(statistics.median(target_seconds), 3),
        "real_tokens_per_step_median": statistics.median(row["tokens"] for row in ours_rows),
        "tokens_per_second_ours": round(tokens / sum(ours_seconds), 1),
        "tokens_per_second_naive": round(tokens / sum(naive_seconds), 1),
        "matmul_peak_gflops": round(peak, 1),
        "gflops_ours": round(ours_flops / sum(ours_seconds) / 1e9, 1),
        "gflops_naive": round(naive_flops / sum(naive_seconds) / 1e9, 1),
        "peak_fraction_ours": round(ours_flops / sum(ours_seconds) / 1e9 / peak, 3),
        "peak_fraction_naive": round(naive_flops / sum(naive_seconds) / 1e9 / peak, 3),
        "shared_prefix_token_share": round(statistics.mean(prefix_shares), 3),
        "matmul_peak_gflops_after": round(matmul_peak_gflops(args.matmul_size, device=args.device,
                                                             dtype=trainer.base_dtype), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }
    return result


def goals(results: dict[str, dict], reference: bool) -> list[Goal]:
    found = []
    if "soft" in results:
        soft = results["soft"]
        found.append(Goal("soft step / naive soft step (in-run)", 1 / soft["naive_over_ours"], MAX_SOFT_RATIO))
        if reference:
            found.append(Goal("soft step vs half the paper code's 6.0 s", soft["seconds_per_step_ours_median"],
                              PAPER_SECONDS_PER_STEP["soft"] * MAX_SOFT_RATIO, "s"))
    for method, result in results.items():
        found.append(Goal(f"{method} training FLOP/s / matmul peak", result["peak_fraction_ours"],
                          MIN_PEAK_FRACTION, higher_is_better=True))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per kind, after one warm-up")
    parser.add_argument("--prompts", type=int, default=64, help="train prompts the batches come from")
    parser.add_argument("--matmul-size", type=int, default=2048, help="square GEMM size of the peak")
    parser.add_argument("--methods", nargs="+", default=["soft", "hard"], choices=["soft", "hard"])
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--method", choices=["soft", "hard"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.method:
        print(json.dumps(run_method(args.method, args)))
        return

    print_header("training step: ours vs naive (full-vocabulary logits at every position)", args.device)
    results = {}
    for method in args.methods:
        argv = [a for a in sys.argv[1:] if a != "--json" and a != args.json]
        done = subprocess.run([sys.executable, "-m", "bench.bench_training", *argv, "--method", method],
                              check=True, stdout=subprocess.PIPE, text=True)
        results[method] = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(results[method]), flush=True)
    reference = is_reference_setup(args)
    if reference:
        for method, result in results.items():
            ours = result["seconds_per_step_ours_median"]
            print(f"paper code ({method}): {PAPER_SECONDS_PER_STEP[method]} s per step on the reference CPU; "
                  f"ours {ours} s, paper/ours x{PAPER_SECONDS_PER_STEP[method] / ours:.2f}")
    print_goals(goals(results, reference))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
