"""Exact evaluation of one prompt against drawing N samples for it: time and W1 error.

For two prompts, the paper's Gaussian(mu=3.5, sigma=3) (continuous: trie KL on the d=5, 1001-atom
training trie, about 4.2k nodes, plus the model's exact distribution over digit intervals of width
1e-2) and Poisson(lambda=4) (integer: trie KL plus the distribution over its support values), it
times `cft.evaluation.fidelity.exact_metrics`, the exact part of the workflow's fidelity job (each
repeat from a fresh `PromptScorer`, so every forward is paid again; median of the repeats), and the
HF sampler drawing `--samples` answers (the workflow's sampled part, one seed per sample).

Reported per prompt: both times, the time of 1000 samples (measured, or scaled linearly from
`--samples`), their ratio, and the W1 to the target of the exact grid distribution and of the valid
samples, whose difference is the sampling error that the exact value does not have. The base
model's answers are mostly invalid (about 2% of its first-token mass is numeric), so the sampled W1
rests on few values; `--adapter` evaluates a trained LoRA adapter instead.

Goal (issue #9): exact evaluation at least 30x faster than 1000 samples for a continuous prompt.
Reference figures on the 2-core CPU: an exact prototype took about 15 s for the continuous prompt and
0.3-0.6 s for the integer one; 200 samples took about 75 s.

    .venv/bin/python -m bench.bench_exact [--repeats 3] [--samples 1000] [--adapter DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from bench.common import Goal, add_model_arguments, print_goals, print_header, synchronize
from cft.evaluation.exact import PromptScorer
from cft.evaluation.fidelity import FidelitySettings, exact_metrics
from cft.evaluation.metrics import w1_to_target
from cft.evaluation.parsing import parse_sample
from cft.evaluation.sampling import HFSampler, SamplingParams
from cft.models import encode_prompt, format_prompt, load_model, load_tokenizer, resolve_model_dir
from cft.prompts import PromptSpec

PROMPTS = (("gaussian", {"mu": 3.5, "sigma": 3.0}), ("poisson", {"lambda": 4.0}))
MIN_SPEEDUP = 30.0
REFERENCE_SAMPLES = 1000


def time_exact(model, tokenizer, spec: PromptSpec, device: str) -> tuple[float, dict]:
    """Seconds and record of exactly what the workflow's `evaluate_fidelity` runs for one prompt."""
    synchronize(device)
    start = time.perf_counter()
    prompt_ids = encode_prompt(tokenizer, format_prompt(tokenizer, spec.prompt))
    record, _ = exact_metrics(PromptScorer(model, prompt_ids), tokenizer, spec, FidelitySettings(num_samples=0))
    synchronize(device)
    return time.perf_counter() - start, record


def time_sampling(model, tokenizer, spec: PromptSpec, samples: int, batch_size: int) -> tuple[float, list]:
    """Seconds to draw `samples` answers, and their parse results (invalid ones kept)."""
    params = SamplingParams(num_samples=samples, max_new_tokens=32, temperature=1.0, top_p=1.0, top_k=0,
                            seed=11)
    start = time.perf_counter()
    texts = HFSampler(model, tokenizer, batch_size=batch_size).sample(
        format_prompt(tokenizer, spec.prompt), params, prompt_index=0)
    seconds = time.perf_counter() - start
    family = spec.family
    support = family.support(spec.param_dict)
    return seconds, [parse_sample(text, support, family.integer_only) for text in texts]


def compare(spec: PromptSpec, exact_seconds: list[float], record: dict, sample_seconds: float,
            parsed: list) -> dict:
    """One prompt's row: times, the 1000-sample ratio and the exact vs sampled W1."""
    dist = spec.family.distribution(spec.param_dict)
    values = [p.value for p in parsed if p.is_valid]
    sampled_w1 = w1_to_target(values, dist) if values else None
    exact_w1 = record["exact_w1"]
    exact_median = statistics.median(exact_seconds)
    seconds_1000 = sample_seconds * REFERENCE_SAMPLES / len(parsed)
    return {
        "exact_seconds_median": round(exact_median, 3),
        "exact_seconds_all": [round(s, 3) for s in exact_seconds],
        "trie_nodes": record["trie_nodes"],
        "exact_grid": record["exact_grid"],
        "exact_valid_mass": record["exact_valid_mass"],
        "exact_trie_kl": record["exact_trie_kl"],
        "samples": len(parsed),
        "sample_seconds": round(sample_seconds, 2),
        "seconds_per_1000_samples": round(seconds_1000, 1),
        "speedup_exact_vs_1000_samples": round(seconds_1000 / exact_median, 1),
        "valid_samples": len(values),
        "exact_w1": exact_w1,
        "sampled_w1": sampled_w1,
        "sampled_minus_exact_w1": (sampled_w1 - exact_w1
                                   if sampled_w1 is not None and exact_w1 is not None else None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--repeats", type=int, default=3, help="exact evaluations per prompt (median)")
    parser.add_argument("--samples", type=int, default=REFERENCE_SAMPLES, help="answers drawn per prompt")
    parser.add_argument("--batch-size", type=int, default=64, help="sampling batch size")
    parser.add_argument("--adapter", help="a trained LoRA adapter folder to evaluate instead of the base model")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print_header(f"exact evaluation vs {args.samples} samples", args.device)
    model_dir = resolve_model_dir(args.model, args.cache_dir)
    model = load_model(model_dir, args.dtype, args.device)
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter).eval()
    tokenizer = load_tokenizer(model_dir)

    results, found = {}, []
    for family_id, params in PROMPTS:
        spec = PromptSpec.from_params(family_id, params)
        runs = [time_exact(model, tokenizer, spec, args.device) for _ in range(args.repeats)]
        sample_seconds, parsed = time_sampling(model, tokenizer, spec, args.samples, args.batch_size)
        row = compare(spec, [seconds for seconds, _ in runs], runs[-1][1], sample_seconds, parsed)
        results[spec.distribution_id] = row
        print(spec.distribution_id, json.dumps(row), flush=True)
        if not spec.family.integer_only:
            found.append(Goal(f"exact vs {REFERENCE_SAMPLES} samples speedup, {spec.distribution_id}",
                              row["speedup_exact_vs_1000_samples"], MIN_SPEEDUP, "x", higher_is_better=True))
    print_goals(found)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
