"""Exact answer probabilities on the open-ended prompts whose answers can be listed ("a random weekday").

Ten samples per prompt cannot tell a flattened distribution from a reordered one. On a prompt with a
closed answer set the model's probability of each answer is computable exactly, teacher-forced: the
answer's tokens after the chat-formatted prompt, then the end of the answer line (eos, or any token
that starts with a line break). That is the probability that the first line of the output is exactly
the answer (`cft.transfer.openended.normalize_answer`), through the answer's canonical tokenization
and without leading blank lines: a lower bound on it, and the bulk of it for a model that answers
plainly.

This is the telling case for rank-preserving baselines (global temperature, ATS): they can flatten the
shares of the seven weekdays but never reorder their first tokens, where a fine-tuned adapter can. The
table keeps each answer's first-token probability beside its line probability for that reason: the
order of the first tokens is what a rank-preserving transform keeps exactly, while the line probability
multiplies several next-token probabilities (the answer's tokens, then the line end), each rescaled by
its own temperature. String Seed of Thought answers after a generated seed string, so it has no
teacher-forced answer probability.

Adding an answer set is one entry in `CHOICE_SETS`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cft.errors import ConfigError
from cft.evaluation.exact import PromptScorer
from cft.evaluations import VariantJob
from cft.io import write_csv
from cft.models import encode_prompt, format_prompt
from cft.transfer.openended import CATEGORIES, openended_prompts, stand_in_columns
from cft.variants import open_variant

log = logging.getLogger(__name__)

CHOICE_SETS: dict[str, tuple[str, ...]] = {
    "weekday": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "month": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"),
    "planet": ("Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"),
}


def check_choice_categories(categories: Sequence[str]) -> None:
    """Stop at config time on a category without a listed answer set."""
    for i, category in enumerate(categories):
        if category not in CHOICE_SETS:
            raise ConfigError(f"config key 'evaluate.exact_choices.categories[{i}]': {category!r} has no "
                              f"answer set; known: {', '.join(CHOICE_SETS)}")


@cache
def _line_end_tokens(tokenizer: Any) -> tuple[int, ...]:
    """eos and every token whose text starts with a line break: what ends a one-line answer."""
    special = set(tokenizer.all_special_ids)
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    breaks = [i for i, text in enumerate(texts) if i not in special and text[:1] in ("\n", "\r")]
    return (tokenizer.eos_token_id, *breaks)


def answer_line_probabilities(scorer: PromptScorer, tokenizer: Any,
                              answers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """P(answer's tokens, then the end of the line) after the scorer's prompt, for each answer, and
    P(the answer's first token)."""
    encoded = [tuple(tokenizer.encode(answer, add_special_tokens=False)) for answer in answers]
    line_ends = list(_line_end_tokens(tokenizer))
    prefixes, tokens = [], []
    for ids in encoded:
        prefixes.extend(ids[:k] for k in range(len(ids)))
        tokens.extend([t] for t in ids)
        prefixes.append(ids)
        tokens.append(line_ends)
    log_probs = scorer.log_probs(prefixes, tokens)
    line, first, position = [], [], 0
    for ids in encoded:
        answer_steps = log_probs[position : position + len(ids)]
        line_end = log_probs[position + len(ids)]
        line.append(math.exp(sum(float(step[0]) for step in answer_steps) + float(np.logaddexp.reduce(line_end))))
        first.append(math.exp(float(answer_steps[0][0])))
        position += len(ids) + 1
    return np.array(line), np.array(first)


def choice_rows(probabilities: np.ndarray, answers: Sequence[str],
                first_token: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One row per answer: its probability, its share of the set's mass and its rank (1 = most
    likely), with the set's total mass and the normalized entropy of the shares (1 = uniform); with
    ``first_token``, the answer's first-token probability and its rank too."""
    mass = float(probabilities.sum())
    shares = probabilities / mass if mass > 0 else np.full(len(answers), np.nan)
    positive = shares[shares > 0]
    entropy = float(-(positive * np.log(positive)).sum() / math.log(len(answers))) if mass > 0 else None
    rows = [{"answer": answer, "probability": float(p), "share": float(s), "rank": int(r),
             "set_mass": mass, "normalized_entropy": entropy}
            for answer, p, s, r in zip(answers, probabilities, shares, _ranks(probabilities))]
    if first_token is not None:
        for row, p, r in zip(rows, first_token, _ranks(first_token)):
            row.update(first_token_probability=float(p), first_token_rank=int(r))
    return rows


def _ranks(values: np.ndarray) -> np.ndarray:
    """1 for the largest value, ties in list order."""
    return (-values).argsort(kind="stable").argsort() + 1


def evaluate_choices(*, model_record_path: str | Path, adapter_dir: str | Path | None, variant: str,
                     categories: Sequence[str], out_csv: str | Path, device: str = "cpu",
                     threads: int | None = None, variant_files: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Exact answer probabilities of one (model, variant) on each category's open-ended prompt."""
    check_choice_categories(categories)
    opened = open_variant(model_record_path, variant, evaluation="choices", files=variant_files,
                          adapter_dir=adapter_dir, device=device, threads=threads)
    model_record, tokenizer, model, chat = opened.record, opened.tokenizer, opened.model, opened.chat
    prompts = dict(zip(CATEGORIES, openended_prompts()))
    rows = []
    for category in categories:
        prompt = prompts[category]
        scorer = PromptScorer(model, encode_prompt(tokenizer, format_prompt(tokenizer, prompt, chat)))
        answers = CHOICE_SETS[category]
        probabilities, first_token = answer_line_probabilities(scorer, tokenizer, answers)
        for row in choice_rows(probabilities, answers, first_token):
            rows.append({"model": model_record["name"], "variant": variant, **stand_in_columns(model_record),
                         "category": category, "prompt": prompt, **row})
        log.info("%s %s: mass %.4f, order %s", variant, category, probabilities.sum(),
                 " > ".join(answers[i] for i in (-probabilities).argsort(kind="stable")))
    frame = pd.DataFrame(rows)
    write_csv(out_csv, frame)
    return frame


def run_choices(job: VariantJob) -> None:
    """The workflow's job (`cft.evaluations`): one (model, variant) on the configured categories."""
    evaluate_choices(**job.variant_kwargs(), adapter_dir=None, categories=job.settings["categories"],
                     out_csv=job.outputs["choices"])


def choices_table(choice_csvs: Sequence[str | Path], out_csv: str | Path) -> pd.DataFrame:
    """Every (model, variant)'s answer probabilities in one table."""
    frame = pd.concat([pd.read_csv(path) for path in choice_csvs], ignore_index=True)
    write_csv(out_csv, frame)
    return frame
