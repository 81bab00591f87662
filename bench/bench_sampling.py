"""Time to draw 100 answers to one chat-formatted prompt with the HF sampler, SmolLM2-135M-Instruct.

Prompt: the paper's Gaussian(mu=3.5, sigma=3) prompt through SmolLM2's chat template; 32 new tokens,
temperature 1, top-p 1, no top-k; fp32 on CPU with 2 torch threads; batch sizes 16 and 64.
Reference point (measurements.md): the paper's HF code took about 33 s for 100 samples at batch 16
on this kind of machine.

The script also checks on the real model that both batch sizes give the same texts for the same
seeds (up to float near-ties: kernels of different batch shapes round differently) and reports the
valid rate of the answers. It then times batch 16 again with rows stopped once they can no longer
parse as a number (`cannot_become_number`, the fidelity default since issue #17), prints the ratio
to full-length generation of the same run, and checks that every verdict is the same. Times are medians over repeats; the machine is shared, so the load
average is recorded too. The model is de-quantized once into resources/models/ (about 30 s).

    .venv/bin/python bench/bench_sampling.py [--repeats 3] [--samples 100] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from cft.evaluation.parsing import cannot_become_number, parse_sample
from cft.evaluation.sampling import HFSampler, SamplingParams
from cft.models import format_prompt, load_model, load_tokenizer, resolve_model_dir
from cft.prompts import PromptSpec

PAPER_SECONDS_BATCH_16 = 33.0
BATCH_SIZES = (16, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default="resources/models")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model_dir = resolve_model_dir("packaged:smollm2-135m-instruct", args.cache_dir)
    model = load_model(model_dir, dtype="float32", device="cpu")
    tokenizer = load_tokenizer(model_dir)
    spec = PromptSpec.from_params("gaussian", {"mu": 3.5, "sigma": 3.0})
    prompt = format_prompt(tokenizer, spec.prompt)
    params = SamplingParams(num_samples=args.samples, max_new_tokens=32, temperature=1.0, top_p=1.0,
                            top_k=0, seed=11)

    # The machine is shared: the load average says how far the times can be trusted.
    results: dict[str, object] = {
        "samples": args.samples, "repeats": args.repeats, "threads": args.threads,
        "load_average_before": os.getloadavg()[0],
    }
    texts_by_batch = {}
    for batch_size in BATCH_SIZES:
        sampler = HFSampler(model, tokenizer, batch_size=batch_size)
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            texts = sampler.sample(prompt, params, prompt_index=0)
            seconds.append(time.perf_counter() - start)
        texts_by_batch[batch_size] = texts
        results[f"batch_{batch_size}_seconds_median"] = round(statistics.median(seconds), 2)
        results[f"batch_{batch_size}_seconds_all"] = [round(s, 2) for s in seconds]

    stopping = HFSampler(model, tokenizer, batch_size=16, stop_when=cannot_become_number)
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        stopped_texts = stopping.sample(prompt, params, prompt_index=0)
        seconds.append(time.perf_counter() - start)
    results["batch_16_stop_at_malformed_seconds_median"] = round(statistics.median(seconds), 2)
    results["stop_at_malformed_speedup"] = round(
        results["batch_16_seconds_median"] / results["batch_16_stop_at_malformed_seconds_median"], 2)

    family = spec.family

    def verdicts(texts):
        return [parse_sample(text, family.support(spec.param_dict), family.integer_only) for text in texts]

    parsed = verdicts(texts_by_batch[BATCH_SIZES[0]])
    results["stop_at_malformed_same_verdicts"] = sum(
        (a.error, a.value) == (b.error, b.value) for a, b in zip(parsed, verdicts(stopped_texts)))
    results["same_texts_at_both_batch_sizes"] = sum(
        a == b for a, b in zip(texts_by_batch[16], texts_by_batch[64])
    )
    results["valid_rate"] = sum(p.is_valid for p in parsed) / len(parsed)
    results["speedup_vs_paper_batch_16"] = round(
        PAPER_SECONDS_BATCH_16 * args.samples / 100 / results["batch_16_seconds_median"], 1
    )
    results["example_texts"] = texts_by_batch[BATCH_SIZES[0]][:5]
    results["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
