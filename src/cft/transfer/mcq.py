"""MCQ answer-position balance: asked to spread the correct answer evenly over A-D, does a model do it?

One fixed prompt asks for a medical multiple-choice question in a strict line format and, among its
requirements, for the correct answer to be evenly distributed over the four letters. Every generation
is independent, so any balance has to come from the model's own per-sample randomness. N generations
are parsed strictly; the declared correct letters of the well-formed ones give the position
distribution, its total-variation distance from uniform and a chi-square test.

The paper dropped unparseable generations silently and reported TV = 0 when none parsed, which reads
as perfect balance. Here every generation is kept with its reason, the valid rate sits beside the
distribution, and with no valid generation the TV and the test are missing, never 0.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
from scipy import stats

from cft.evaluation.fidelity import make_sampler, prompt_key
from cft.evaluation.sampling import SamplingSection, sample_seeds
from cft.io import read_json, write_csv, write_json, write_jsonl
from cft.models import format_prompt, strip_thinking
from cft.transfer.openended import THINK_TAG, stand_in_columns
from cft.variants import open_variant

log = logging.getLogger(__name__)

LETTERS = ("A", "B", "C", "D")

# The paper's requirements, in this project's words; the bracketed template lines are the format the
# parser checks.
MEDICAL_MCQ_PROMPT = """\
You are an expert in medical education who writes high-quality multiple-choice questions for \
medical students and practitioners.

Write one medical multiple-choice question of moderate difficulty, with four options and a single \
correct answer.

Use exactly this format:
Question: [the question]
A. [option A]
B. [option B]
C. [option C]
D. [option D]
Correct Answer: [A/B/C/D]
Explanation: [a short explanation]

Requirements:
1. The question has practical value for medical practice.
2. All four options are plausible, with sensible distractors.
3. Exactly one option is correct.
4. Output the question directly, with nothing before or after it.
5. Draw on different areas of medicine, such as internal medicine, surgery, pharmacology, pathology \
or diagnostics.
6. Spread the correct answer evenly over A, B, C and D, so that no letter is favoured.
"""

# Line labels in the order they are tried; options are "A." to "D.".
FIELDS = {"Question:": "question", "Correct Answer:": "correct_answer", "Explanation:": "explanation"}


@dataclass(frozen=True)
class McqParse:
    """A generation read strictly. ``answer`` is the declared letter when the whole output is well
    formed (no errors), else None; ``errors`` lists every format problem found, in reading order."""

    answer: str | None
    declared: str | None
    question: str | None
    options: dict[str, str | None]
    explanation: str | None
    errors: tuple[str, ...]

    @property
    def is_valid(self) -> bool:
        return not self.errors

    @property
    def reason(self) -> str | None:
        return ";".join(self.errors) or None

    @property
    def unique_options(self) -> bool:
        texts = [text for text in self.options.values() if text]
        return len(texts) == len(LETTERS) and len(set(texts)) == len(LETTERS)


def parse_mcq(text: str) -> McqParse:
    """Parse one generation in the prompt's format.

    After thinking traces are removed, every non-blank line (stripped) must start with one of the
    labels "Question:", "A." to "D.", "Correct Answer:", "Explanation:", each exactly once; the
    declared answer must be exactly one capital letter A-D. Anything else (a preamble, markdown such
    as "**Question:**", "A)" labels, a second paragraph of explanation, "Correct Answer: B. Insulin")
    is an error: the generation did not follow the format, so its letter is not counted.
    """
    cleaned = THINK_TAG.sub("", strip_thinking(text)).strip()
    if not cleaned:
        return McqParse(None, None, None, dict.fromkeys(LETTERS), None, ("empty_response",))
    found: dict[str, str] = {}
    errors: list[str] = []
    for line in (line.strip() for line in cleaned.splitlines()):
        if not line:
            continue
        field, rest = _match_label(line)
        if field is None:
            errors.append("unexpected_line")
        elif field in found:
            errors.append(f"duplicate_{field}")
        else:
            found[field] = " ".join(rest.split())
    for field in ("question", *(f"option_{letter.lower()}" for letter in LETTERS), "correct_answer",
                  "explanation"):
        if field not in found:
            errors.append(f"missing_{field}")
        elif not found[field]:
            errors.append(f"empty_{field}")
    declared = found.get("correct_answer")
    if declared and declared not in LETTERS:
        errors.append("invalid_correct_answer")
    return McqParse(
        answer=declared if not errors else None,
        declared=declared,
        question=found.get("question"),
        options={letter: found.get(f"option_{letter.lower()}") for letter in LETTERS},
        explanation=found.get("explanation"),
        errors=tuple(dict.fromkeys(errors)),
    )


def _match_label(line: str) -> tuple[str | None, str]:
    """(field name, rest of the line) for a labelled line, (None, line) otherwise."""
    for label, field in FIELDS.items():
        if line.startswith(label):
            return field, line[len(label):]
    for letter in LETTERS:
        if line.startswith(f"{letter}."):
            return f"option_{letter.lower()}", line[2:]
    return None, line


def position_metrics(parses: Sequence[McqParse]) -> dict[str, Any]:
    """Position distribution of the valid generations and its distance from uniform.

    ``valid_rate`` counts well-formed generations over all of them; ``declared_answer_rate`` the looser
    share whose declared letter is A-D whatever else went wrong. TV = 1/2 sum |share - 1/4|; chi-square
    against |valid|/4 per letter (3 degrees of freedom). Shares, TV and the test are None without a
    valid generation.
    """
    if not parses:
        raise ValueError("position_metrics needs at least one generation")
    valid = [p.answer for p in parses if p.is_valid]
    counts = Counter(valid)
    n_valid = len(valid)
    shares = {letter: counts[letter] / n_valid if n_valid else None for letter in LETTERS}
    if n_valid:
        deviations = [abs(shares[letter] - 1 / len(LETTERS)) for letter in LETTERS]
        chi2 = stats.chisquare([counts[letter] for letter in LETTERS])
        tv, max_dev = 0.5 * sum(deviations), max(deviations)
        chi2_stat, chi2_p = float(chi2.statistic), float(chi2.pvalue)
    else:
        tv = max_dev = chi2_stat = chi2_p = None
    return {
        "num_samples": len(parses),
        "num_valid": n_valid,
        "valid_rate": n_valid / len(parses),
        "declared_answer_rate": sum(p.declared in LETTERS for p in parses) / len(parses),
        "unique_options_rate": sum(p.unique_options for p in parses) / len(parses),
        **{f"count_{letter}": counts[letter] for letter in LETTERS},
        **{f"share_{letter}": shares[letter] for letter in LETTERS},
        "tv_from_uniform": tv,
        "max_abs_deviation": max_dev,
        "chi_square": chi2_stat,
        "chi_square_pvalue": chi2_p,
    }


@dataclass(frozen=True, kw_only=True)
class McqSettings(SamplingSection):
    """The `evaluate.mcq` config section plus the master seed."""

    max_new_tokens: int = 256


def evaluate_mcq(*, model_record_path: str | Path, adapter_dir: str | Path | None, variant: str,
                 settings: McqSettings, generations_jsonl: str | Path, summary_json: str | Path,
                 device: str = "cpu", threads: int | None = None,
                 variant_files: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Generate, parse and summarize the MCQs of one (model, variant); writes every generation with
    its seed and parse result, and the summary. ``variant_files``: as in `evaluate_openended`."""
    # vLLM loads its own copy of the weights; the transformers model is needed only to sample with it.
    opened = open_variant(model_record_path, variant, evaluation="mcq", files=variant_files, adapter_dir=adapter_dir,
                          device=device, threads=threads, backend=settings.backend, in_process_model=False)
    model_record, tokenizer, model = opened.record, opened.tokenizer, opened.model
    settings = replace(settings, backend=opened.backend)
    formatted = format_prompt(tokenizer, MEDICAL_MCQ_PROMPT, opened.chat)
    sampler = make_sampler(settings, model, tokenizer, model_record, adapter_dir)
    params = settings.sampling
    key = prompt_key("mcq", "medical")

    started = time.perf_counter()
    texts = sampler.sample(formatted, params, prompt_index=key)
    parses = [parse_mcq(text) for text in texts]
    generations = [
        {"model": model_record["name"], "variant": variant, "sample_index": i, "seed": seed, "raw_text": text,
         "is_valid": p.is_valid, "answer": p.answer, "declared": p.declared, "question": p.question,
         "options": p.options, "explanation": p.explanation, "error": p.reason}
        for i, (seed, text, p) in enumerate(zip(sample_seeds(params, key), texts, parses))
    ]
    summary = {
        "model": model_record["name"], "variant": variant, **stand_in_columns(model_record),
        **position_metrics(parses),
        "error_counts": dict(sorted(Counter(e for p in parses for e in p.errors).items())),
        "settings": asdict(settings),
    }
    log.info("%s: %d generations in %.1fs, valid_rate=%.3f tv=%s counts=%s", variant, len(texts),
             time.perf_counter() - started, summary["valid_rate"], summary["tv_from_uniform"],
             [summary[f"count_{letter}"] for letter in LETTERS])
    write_jsonl(generations_jsonl, generations)
    write_json(summary_json, summary)
    return summary


def mcq_table(summary_jsons: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """One row per (model, variant) from the per-variant summaries (error counts as one JSON column)."""
    rows = []
    for path in summary_jsons:
        summary = read_json(path)
        summary.pop("settings")
        summary["error_counts"] = json.dumps(summary["error_counts"], sort_keys=True)
        rows.append(summary)
    frame = pd.DataFrame(rows)
    leading = ["model", "variant", "source", "stand_in", "num_samples", "num_valid", "valid_rate",
               "tv_from_uniform", "chi_square", "chi_square_pvalue"]
    frame = frame[leading + [column for column in frame.columns if column not in leading]]
    write_csv(out, frame)
    return frame
