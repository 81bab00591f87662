"""Large vocabularies (issue #29): an output head's log-probabilities over the full vocabulary, as one
matmul with its logsumexp against `cft.logits.selected_log_probs`'s vocabulary blocks, and one exact
Gaussian prompt, for two models, each against the matmul peak measured in the same run.

Per model: the head's time per 256 positions both ways (the exact scorer's chunk of positions; median
of interleaved repeats, so drift on the machine hits both alike) with its GFLOP/s against the peak,
and the time of `exact_metrics` for the paper's Gaussian(mu=3.5, sigma=3) prompt (as bench_exact).
The last model's exact prompt is compared with the first's: goal at most 3x (SmolLM2 against Gemma 3
270M, whose head is 262144 x 640 against 49152 x 576).

    .venv/bin/python -m bench.bench_vocab [--models packaged:smollm2-135m-instruct packaged:gemma-3-270m]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from bench.bench_exact import time_exact
from bench.common import Goal, matmul_peak_gflops, print_goals, print_header
from cft.logits import VOCAB_CHUNK, selected_log_probs
from cft.models import load_model, load_tokenizer, resolve_model_dir
from cft.prompts import PromptSpec

POSITIONS = 256
TOKENS_PER_POSITION = 10
MAX_RATIO = 3.0


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["packaged:smollm2-135m-instruct", "packaged:gemma-3-270m"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default="resources/models")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

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
        print(name, json.dumps(results[name]), flush=True)
    first, last = (results[name]["exact_gaussian_seconds"] for name in (args.models[0], args.models[-1]))
    print_goals([Goal(f"exact Gaussian prompt, {args.models[-1]} / {args.models[0]}", last / first, MAX_RATIO, "x")])
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"matmul_peak_gflops": peak, "models": results}, out, indent=2)


if __name__ == "__main__":
    main()
