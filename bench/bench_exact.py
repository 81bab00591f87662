"""Time exact (sampling-free) evaluation of one prompt on SmolLM2-135M-Instruct, fp32 CPU, 2 threads.

It times `cft.evaluation.fidelity.exact_metrics`, the exact part of the workflow's fidelity job, on
two prompts: the paper's Gaussian(mu=3.5, sigma=3) (continuous: trie KL on the d=5, 1001-atom
training trie, about 4.2k nodes, plus the digit-interval distribution at r=2) and Poisson(lambda=4)
(integer: trie KL plus the distribution over its support values). Each repeat starts from a fresh
`PromptScorer`, so the prompt forward and every node are paid again; times are medians.

Reference points (measurements.md): the paper's HF sampler takes about 33 s per 100 samples of one
prompt, so 330 s for the 1000 samples of its evaluation; an unoptimized exact prototype took 15 s
per continuous prompt. The goal is 30x faster than 1000 samples. `--samples N` also times this
repository's HF sampler on the Gaussian prompt (batch 64) for a same-machine, same-run ratio.
Benchmark alone: one busy neighbour can slow a 2-thread job several times; the matmul throughput
printed before and after shows whether that happened.

    .venv/bin/python bench/bench_exact.py [--repeats 3] [--samples 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from cft.evaluation.fidelity import FidelitySettings, exact_metrics
from cft.models import encode_prompt, format_prompt, load_model, load_tokenizer, resolve_model_dir
from cft.prompts import PromptSpec

PAPER_SECONDS_PER_100_SAMPLES = 33.0
PROMPTS = (("gaussian", {"mu": 3.5, "sigma": 3.0}), ("poisson", {"lambda": 4.0}))


def evaluate(model, tokenizer, spec: PromptSpec) -> dict:
    """Time exactly what the workflow's `evaluate_fidelity` runs for one prompt (its exact part)."""
    start = time.perf_counter()
    prompt_ids = encode_prompt(tokenizer, format_prompt(tokenizer, spec.prompt))
    record, _ = exact_metrics(model, tokenizer, spec, prompt_ids, FidelitySettings(num_samples=0))
    seconds = time.perf_counter() - start
    keys = ("trie_nodes", "exact_grid", "exact_trie_kl", "trie_kl", "exact_sequence_kl", "exact_valid_mass",
            "digit_kl", "exact_w1", "first_token_numeric_mass")
    return {"seconds": seconds, **{key: record[key] for key in keys}}


def time_sampling(model, tokenizer, spec: PromptSpec, samples: int) -> float:
    from cft.evaluation.sampling import HFSampler, SamplingParams

    params = SamplingParams(num_samples=samples, max_new_tokens=32, temperature=1.0, top_p=1.0, top_k=0,
                            seed=11)
    start = time.perf_counter()
    HFSampler(model, tokenizer, batch_size=64).sample(format_prompt(tokenizer, spec.prompt), params,
                                                       prompt_index=0)
    return time.perf_counter() - start


def matmul_gflops() -> float:
    """Dense fp32 throughput right now (about 185 on a quiet 2-vCPU machine): a contention gauge."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    return round(10 * 2 * 1024**3 / (time.perf_counter() - start) / 1e9, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=0, help="also time N samples of the Gaussian prompt")
    parser.add_argument("--cache-dir", default="resources/models")
    parser.add_argument("--model-dir", help="a de-quantized SmolLM2 folder (default: the packaged model)")
    args = parser.parse_args()

    torch.set_num_threads(2)
    model_dir = args.model_dir or resolve_model_dir("packaged:smollm2-135m-instruct", args.cache_dir)
    model = load_model(model_dir, dtype="float32", device="cpu")
    tokenizer = load_tokenizer(model_dir)

    results: dict[str, object] = {"threads": 2, "repeats": args.repeats, "matmul_gflops_before": matmul_gflops()}
    for family_id, params in PROMPTS:
        spec = PromptSpec.from_params(family_id, params)
        runs = [evaluate(model, tokenizer, spec) for _ in range(args.repeats)]
        summary = {key: value for key, value in runs[-1].items() if not key.startswith("seconds")}
        for key in runs[0]:
            if key.startswith("seconds"):
                summary[key + "_median"] = round(statistics.median(run[key] for run in runs), 2)
        summary["seconds_all"] = [round(run["seconds"], 2) for run in runs]
        summary["speedup_vs_paper_1000_samples"] = round(
            10 * PAPER_SECONDS_PER_100_SAMPLES / summary["seconds_median"], 1
        )
        results[spec.distribution_id] = summary

    if args.samples:
        spec = PromptSpec.from_params(*PROMPTS[0])
        seconds = time_sampling(model, tokenizer, spec, args.samples)
        exact_seconds = results[spec.distribution_id]["seconds_median"]
        results["sampling"] = {
            "samples": args.samples,
            "seconds": round(seconds, 2),
            "speedup_of_exact_vs_1000_samples": round(seconds * 1000 / args.samples / exact_seconds, 1),
        }
    results["matmul_gflops_after"] = matmul_gflops()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
