"""What String Seed of Thought's fidelity answers need: tokens to the first answer against tokens drawn.

For a few fidelity prompts, it draws the workflow's SSoT answers (its system prompt, 4 answers of at
most 384 tokens, the fidelity seeds of the `unseen` split) with the plain token budget, and reads each
answer twice:

* as the workflow does today: the *last* complete ``<answer>...</answer>`` outside thinking traces
  (`cft.prompting.ssot.parse_ssot_sample` on the whole text);
* cut at its first complete answer: the shortest prefix of the text that holds a complete answer
  outside thinking traces, which is where a sampler that stops a row once it has one would stop it.

Per prompt it prints the tokens each row drew and the tokens to its first answer, the decode steps of
the batch (its longest row) with and without that stop, and every row whose verdict the two readings
give differently (a second answer after the first). Decode steps, not seconds: the machine is busy.

    .venv/bin/python -m bench.bench_ssot [--prompts 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import re
import time

import torch

from bench.common import add_model_arguments, print_header
from cft.prompting.ssot import extract_answer, format_ssot_prompt, parse_ssot_sample, read_outputs
from cft.evaluation.fidelity import FidelitySettings, prompt_key
from cft.evaluation.sampling import HFSampler
from cft.models import ChatOptions, load_model, load_tokenizer, resolve_model_dir
from cft.prompts import PromptSpec

PROMPTS = (("gaussian", {"mu": 3.5, "sigma": 3.0}), ("poisson", {"lambda": 4.0}),
           ("uniform", {"a": 0.0, "b": 10.0}), ("binomial", {"n": 20.0, "p": 0.3}),
           ("exponential", {"lambda": 0.5}), ("geometric", {"p": 0.2}))
# The default's `baselines.ssot` and `evaluate.fidelity` settings (config/config.yaml).
SETTINGS = FidelitySettings(num_samples=4, max_new_tokens=384, batch_size=50, seed=11)
CLOSE_TAG = re.compile(r"</answer>", re.IGNORECASE)


def first_answer_end(text: str) -> int | None:
    """The length of the shortest prefix of ``text`` that holds a complete answer outside thinking
    traces, None when no prefix does."""
    for close in CLOSE_TAG.finditer(text):
        if extract_answer(text[: close.end()]).text is not None:
            return close.end()
    return None


def verdict(parsed) -> tuple:
    return (parsed.is_valid, parsed.value, parsed.error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--prompts", type=int, default=4, help=f"how many of the {len(PROMPTS)} prompts")
    parser.add_argument("--json", help="also write the results, with the answers' texts, here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print_header("SSoT fidelity answers: tokens drawn against tokens to the first answer", args.device)
    model_dir = resolve_model_dir(args.model, args.cache_dir)
    tokenizer = load_tokenizer(model_dir)
    sampler = HFSampler(load_model(model_dir, args.dtype, args.device), tokenizer, batch_size=SETTINGS.batch_size)
    params = SETTINGS.sampling
    results = []
    for family_id, values in PROMPTS[: args.prompts]:
        spec = PromptSpec.from_params(family_id, values)
        support, integer_only = spec.family.support(spec.param_dict), spec.family.integer_only
        started = time.perf_counter()
        texts = sampler.sample(format_ssot_prompt(tokenizer, spec.prompt, ChatOptions()), params,
                               prompt_index=prompt_key("unseen", spec.distribution_id))
        seconds = time.perf_counter() - started
        rows = []
        for text, (_, counts) in zip(texts, read_outputs(tokenizer, texts, params.max_new_tokens)):
            end = first_answer_end(text)
            cut = text if end is None else text[:end]
            today = parse_ssot_sample(text, support, integer_only, hit_token_limit=counts["hit_token_limit"])
            capped = (today if end is None
                      else parse_ssot_sample(cut, support, integer_only, hit_token_limit=False))
            rows.append({
                "tokens": counts["generated_tokens"],
                "tokens_to_first_answer": None if end is None else len(tokenizer(cut, add_special_tokens=False)["input_ids"]),
                "answer_tags_closed": len(CLOSE_TAG.findall(text)),
                "verdict_today": verdict(today),
                "verdict_capped": verdict(capped),
                "text": text,
            })
        steps = max(r["tokens"] for r in rows)
        capped_steps = max(r["tokens"] if r["tokens_to_first_answer"] is None else r["tokens_to_first_answer"]
                           for r in rows)
        result = {"prompt": spec.distribution_id, "seconds": round(seconds, 1), "decode_steps": steps,
                  "decode_steps_capped": capped_steps,
                  "rows": [{k: v for k, v in r.items() if k.startswith("tokens") or k == "answer_tags_closed"}
                           for r in rows],
                  "verdicts_differ": [r for r in rows if r["verdict_today"] != r["verdict_capped"]],
                  "valid": sum(r["verdict_today"][0] for r in rows)}
        print(json.dumps(result, default=str), flush=True)
        results.append({**result, "texts": [r["text"] for r in rows]})
    total, capped = sum(r["decode_steps"] for r in results), sum(r["decode_steps_capped"] for r in results)
    differ = sum(len(r["verdicts_differ"]) for r in results)
    print(f"decode steps {total} -> {capped} with the stop at the first answer "
          f"({capped / total:.2f}); verdicts that differ: {differ} of {len(results) * SETTINGS.num_samples}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2, default=str)


if __name__ == "__main__":
    main()
