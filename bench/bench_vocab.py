"""Large vocabularies (issue #29): an output head's log-probabilities over the full vocabulary, as one
matmul with its logsumexp against `cft.logits.selected_log_probs`'s vocabulary blocks, one exact
Gaussian prompt, and the soft training step with its loss normalized in blocks against the full
logits at the answer positions, for two models, each against the matmul peak measured in the same run.

Per model:
* the head's time per 256 positions both ways (the exact scorer's chunk of positions; median of
  interleaved repeats, so drift on the machine hits both alike) with its GFLOP/s against the peak;
* the time of `exact_metrics` for the paper's Gaussian(mu=3.5, sigma=3) prompt (as bench_exact);
* the soft step (`SoftTargetTrainer.training_step`, batch 8, LoRA r16 on q/k/v/o, as bench_training)
  with its loss from `cft.training.losses.head_log_probs` (blocks) and with the pre-issue-29 loss
  (`answer_logits`: [B, S, V] fp32 logits at the answer positions, then a full log-softmax): median
  seconds after one warm-up step, FLOP/s against the peak (`bench.common.training_step_flops`) and
  peak RSS, each loss in a process of its own so that the RSS is its own.
The last model is compared with the first: goals at most 3x for the exact prompt and for the soft
step (SmolLM2 against Gemma 3 270M, whose head is 262144 x 640 against 49152 x 576).

    .venv/bin/python -m bench.bench_vocab [--models packaged:smollm2-135m-instruct packaged:gemma-3-270m]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from bench.bench_exact import time_exact
from bench.bench_training import make_batch, make_trainer
from bench.common import Goal, matmul_peak_gflops, model_shape, print_goals, print_header, training_step_flops
from cft.logits import VOCAB_CHUNK, selected_log_probs
from cft.training.losses import answer_logits, log_probs_at, shared_prefix_length, soft_target_kl
from cft.models import load_model, load_tokenizer, resolve_model_dir
from cft.prompts import PromptSpec

POSITIONS = 256
TOKENS_PER_POSITION = 10
MAX_RATIO = 3.0
SOFT_STEPS = 4


def head_times(head: torch.nn.Module, repeats: int) -> dict[str, float]:
    """Median seconds per `POSITIONS` positions: the full logits with their logsumexp, and blocked."""
    weight = head.weight.detach()
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(POSITIONS, weight.size(1), generator=generator).to(weight.dtype)
    rows = torch.arange(POSITIONS).repeat_interleave(TOKENS_PER_POSITION)
    tokens = torch.randint(0, weight.size(0), (rows.numel(),), generator=generator)

    def full():
        logits = head(hidden).float()
        return logits[rows, tokens] - torch.logsumexp(logits, dim=-1)[rows]

    def blocked():
        return selected_log_probs(hidden, weight, rows, tokens)

    seconds = {"full": [], "blocked": []}
    with torch.inference_mode():
        torch.testing.assert_close(blocked(), full(), rtol=1e-5, atol=1e-5)
        for _ in range(repeats):
            for name, run in (("full", full), ("blocked", blocked)):
                start = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in seconds.items()}


def full_logits_soft_loss(trainer, batch) -> torch.Tensor:
    """The soft loss as before issue #29: [B, S, V] fp32 logits at the answer positions, a full
    log-softmax, then the children's entries."""
    logits = answer_logits(trainer.model, batch["input_ids"], batch["attention_mask"], batch["positions"])
    children = log_probs_at(logits, batch["target_ids"], trainer.config.temperature)
    return soft_target_kl(children, batch["target_ids"], batch["target_probs"], batch["step_mask"],
                          trainer.config.epsilon)


def soft_steps(model: str, loss: str, threads: int, cache_dir: str) -> dict:
    """`SOFT_STEPS` soft steps after a warm-up one, in this process, with the loss in blocks (the
    trainer's) or from full logits; median seconds, FLOPs per step and this process's peak RSS."""
    args = argparse.Namespace(model=model, device="cpu", dtype="auto", threads=threads, cache_dir=cache_dir,
                              prompts=64)
    trainer, batches = make_trainer("soft", args, SOFT_STEPS + 1)
    if loss == "full":
        trainer.compute_loss = lambda batch: full_logits_soft_loss(trainer, batch)
    shape = model_shape(trainer.model)
    seconds, flops = [], []
    for index, items in enumerate(batches):
        batch = make_batch(trainer, items)
        row = trainer.training_step(items, epoch=0)
        if index == 0:
            continue  # warm-up
        seconds.append(row["seconds"])
        width, depth = batch["input_ids"].shape[1], batch["positions"].shape[1]
        prefix = shared_prefix_length(batch["input_ids"], batch["attention_mask"], batch["positions"])
        flops.append(training_step_flops(shape, len(items), width, len(items) * depth, prefix))
    return {"seconds": statistics.median(seconds), "flops": sum(flops) / len(flops), "steps": len(seconds),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def soft_steps_in_own_process(model: str, loss: str, args: argparse.Namespace) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.bench_vocab", "--soft-steps", model, loss,
                           "--threads", str(args.threads), "--cache-dir", args.cache_dir],
                          check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["packaged:smollm2-135m-instruct", "packaged:gemma-3-270m"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default="resources/models")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--soft-steps", nargs=2, metavar=("MODEL", "LOSS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.soft_steps:
        print(json.dumps(soft_steps(*args.soft_steps, args.threads, args.cache_dir)))
        return

    torch.set_num_threads(args.threads)
    print_header(f"large vocabularies, blocks of {VOCAB_CHUNK}")
    peak = matmul_peak_gflops()
    print(f"matmul peak {peak:.1f} GFLOP/s", flush=True)
    spec = PromptSpec.from_params("gaussian", {"mu": 3.5, "sigma": 3.0})
    results = {}
    for name in args.models:
        model_dir = resolve_model_dir(name, args.cache_dir)
        model, tokenizer = load_model(model_dir, "auto", "cpu"), load_tokenizer(model_dir)
        head = model.get_output_embeddings()
        vocab, width = head.weight.shape
        times = head_times(head, args.repeats)
        flops = 2 * POSITIONS * vocab * width
        exact_seconds = statistics.median(time_exact(model, tokenizer, spec, "cpu")[0] for _ in range(2))
        results[name] = {
            "vocab": vocab, "hidden": width,
            "head_ms_full": round(times["full"] * 1e3, 1), "head_ms_blocked": round(times["blocked"] * 1e3, 1),
            "head_speedup": round(times["full"] / times["blocked"], 2),
            "head_fraction_of_peak_full": round(flops / times["full"] / 1e9 / peak, 3),
            "head_fraction_of_peak_blocked": round(flops / times["blocked"] / 1e9 / peak, 3),
            "exact_gaussian_seconds": round(exact_seconds, 2),
        }
        del model
        for loss in ("blocked", "full"):
            step = soft_steps_in_own_process(name, loss, args)
            fraction = step["flops"] / step["seconds"] / 1e9 / peak
            results[name] |= {f"soft_step_seconds_{loss}": round(step["seconds"], 3),
                              f"soft_step_fraction_of_peak_{loss}": round(fraction, 3),
                              f"soft_step_peak_rss_mb_{loss}": step["peak_rss_mb"]}
        print(name, json.dumps(results[name]), flush=True)
    first, last = (results[name] for name in (args.models[0], args.models[-1]))
    pair = f"{args.models[-1]} / {args.models[0]}"
    exact_ratio = last["exact_gaussian_seconds"] / first["exact_gaussian_seconds"]
    print_goals([Goal(f"exact Gaussian prompt, {pair}", exact_ratio, MAX_RATIO, "x"),
                 Goal(f"soft step, {pair}", last["soft_step_seconds_blocked"] / first["soft_step_seconds_blocked"],
                      MAX_RATIO, "x")])
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"matmul_peak_gflops": peak, "models": results}, out, indent=2)


if __name__ == "__main__":
    main()
