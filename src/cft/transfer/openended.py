"""Open-ended random generation: asked for "a random city", does a model spread its answers?

The paper's 102 prompts read "<verb> a random <category>. Output ONLY the answer.", the verb cycling
through Think of / Choose / Name / Pick. Two metrics per prompt:

* support size at threshold t: the fewest first-answer tokens whose probabilities add up to at least
  t, from one forward pass over the prompt (logits at its last position only). It is computed in
  float32: the paper's code ran softmax, sort and cumulative sum in the logits' bf16, which rounds
  0.9 to 0.898 and shifts the count by thousands of tokens on a flat distribution.
* unique output rate: distinct normalized answers among N samples, divided by N, so empty answers
  lower it. The answer distribution itself (top answers with their shares, entropy) is kept beside
  it, and a canonical variant of the rate (case, punctuation and markdown folded away) shows how much
  of the paper's exact-string uniqueness is formatting.

An answer that is empty after normalization is the only invalid outcome here: it is kept in the raw
samples with the reason ``empty_answer`` and counted in every denominator.

String Seed of Thought (`cft.prompting.ssot`) is evaluated on the same prompts with its own system
prompt and token budget: its answer is the content of its answer tag (an output without one is an
empty answer with the reason ``no_answer_tag`` or ``truncated``), and it has no support size, since
its first token opens the seed string rather than the answer.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import re
import string
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from cft.prompting.ssot import format_ssot_prompt, read_outputs, token_summary
from cft.errors import ConfigError
from cft.evaluation.fidelity import make_sampler, prompt_key
from cft.evaluation.sampling import SamplingSection, sample_seeds
from cft.io import write_csv, write_jsonl
from cft.models import encode_prompt, format_prompt, strip_thinking
from cft.variants import open_variant

log = logging.getLogger(__name__)

VERBS = ("Think of", "Choose", "Name", "Pick")
CATEGORIES = (
    "word", "first name", "city", "country", "animal", "food", "job", "hobby", "sport", "color",
    "flower", "tree", "disease", "medicine", "body part", "musical instrument", "book title",
    "movie title", "historical figure", "fictional character", "vegetable", "fruit", "bird", "fish",
    "mammal", "reptile", "insect", "sea creature", "language", "nationality", "mountain", "river",
    "lake", "island", "planet", "constellation", "chemical element", "gemstone", "metal",
    "household object", "kitchen tool", "piece of clothing", "shoe type", "hat style", "vehicle",
    "car brand", "musical genre", "song title", "band name", "composer", "actor", "actress",
    "director", "painter", "sculptor", "architect", "philosopher", "scientist", "mathematician",
    "inventor", "academic subject", "school supply", "weather condition", "season", "month",
    "weekday", "holiday", "board game", "video game", "toy", "cartoon character", "superhero",
    "mythological figure", "fairy-tale character", "dinosaur", "dog breed", "cat breed",
    "farm animal", "wild animal", "snack", "dessert", "drink", "spice", "herb", "restaurant dish",
    "disease symptom", "medical specialty", "hospital department", "medicine brand", "vitamin",
    "bone", "muscle", "organ", "facial feature", "surname", "baby name for a girl",
    "baby name for a boy", "capital city", "UNESCO world heritage site", "famous landmark",
    "religion", "programming language",
)
# SHA-256 of the paper's prompts.json (json.dumps(prompts, indent=2) + "\n"); `openended_prompts`
# must reproduce it.
PAPER_PROMPTS_SHA256 = "343c78f3572ae5a685d25ed41b5eea3577615d0cbccbc69a6a39f06bd9092bd1"
# 0.01, 0.05, 0.10, ..., 0.95, 0.99: the paper's 21 thresholds.
PAPER_THRESHOLDS = (0.01, *(round(0.05 * i, 2) for i in range(1, 20)), 0.99)
EMPTY_ANSWER = "empty_answer"
SUPPORT_SKIPPED = "ssot: the first generated token opens the seed string, not the answer"


def openended_prompts() -> list[str]:
    """The paper's 102 prompts, in its order."""
    return [f"{VERBS[i % len(VERBS)]} a random {category}. Output ONLY the answer."
            for i, category in enumerate(CATEGORIES)]


def check_case_studies(categories: Sequence[str]) -> None:
    """Stop at config time on a case-study category that is not one of the 102."""
    for i, category in enumerate(categories):
        if category not in CATEGORIES:
            raise ConfigError(f"config key 'evaluate.openended.case_studies[{i}]': {category!r} is not a "
                              f"category of the open-ended prompts (e.g. {', '.join(CATEGORIES[:4])}, weekday)")


def prompts_sha256(prompts: Sequence[str]) -> str:
    """The digest the paper's prompts.json file would have with these prompts."""
    return hashlib.sha256((json.dumps(list(prompts), indent=2) + "\n").encode()).hexdigest()


def threshold_key(threshold: float) -> str:
    """Column name of a support threshold: 0.9 -> "support_p0p9", 0.01 -> "support_p0p01"."""
    return "support_p" + f"{threshold:.6f}".rstrip("0").rstrip(".").replace(".", "p")


# ---- support size --------------------------------------------------------------------------------


def support_sizes(probs: torch.Tensor, thresholds: Sequence[float]) -> torch.Tensor:
    """Support size of each row of ``probs`` (rows = distributions) at each threshold, int64 [rows, T].

    Support size at t is the smallest k such that the k largest probabilities sum to at least t.
    Ties do not matter (only sorted values enter). The cumulative sum is divided by its last entry, so
    it ends at exactly 1.0 and t = 1 gives the number of tokens with non-zero probability instead of
    the whole vocabulary whenever float32 rounding leaves the sum a hair below 1.
    """
    if any(not 0.0 <= t <= 1.0 for t in thresholds):
        raise ValueError(f"thresholds must lie in [0, 1], got {list(thresholds)}")
    probs = torch.atleast_2d(probs).float()
    cumulative = torch.cumsum(torch.sort(probs, dim=-1, descending=True).values, dim=-1)
    cumulative = cumulative / cumulative[:, -1:]
    targets = torch.tensor(thresholds, dtype=torch.float32).expand(probs.shape[0], -1).contiguous()
    first_index = torch.searchsorted(cumulative, targets, right=False)
    return (first_index + 1).clamp(max=probs.shape[-1])


@torch.inference_mode()
def first_token_logits(model: Any, tokenizer: Any, formatted_prompts: Sequence[str], *,
                       batch_size: int) -> torch.Tensor:
    """Next-token logits after each formatted prompt (float32 [prompts, vocab]), batched.

    Rows are padded on the left so that every prompt ends at the last position, which is the only
    one whose logits are computed; explicit position ids keep each prompt's positions as if it ran
    alone.
    """
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows = []
    for start in range(0, len(formatted_prompts), batch_size):
        encoded = [encode_prompt(tokenizer, text) for text in formatted_prompts[start : start + batch_size]]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in encoded])
        attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device),
                    position_ids=position_ids.to(model.device), use_cache=False, logits_to_keep=1)
        rows.append(out.logits[:, -1, :].float().cpu())
    return torch.cat(rows)


# ---- answers -------------------------------------------------------------------------------------

THINK_TAG = re.compile(r"</?think>", re.IGNORECASE)
_MARKUP = re.compile(r"[*_`#]+")
_EDGE_PUNCTUATION = string.punctuation + "“”‘’«»…"


def normalize_answer(text: str) -> str:
    """The paper's normalization: the first non-empty line of the answer after thinking traces are
    removed, whitespace runs collapsed, one pair of matching outer quotes removed. Case, punctuation
    and markdown are kept ("Paris." and "Paris" are different answers)."""
    text = THINK_TAG.sub("", strip_thinking(text))
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    line = " ".join(line.split())
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "'\"":
        line = line[1:-1].strip()
    return line


def canonical_answer(text: str) -> str:
    """`normalize_answer`, then casefolded, markdown markers removed and punctuation trimmed from both
    ends, so "**Paris.**", "paris" and '"Paris"' count as one answer."""
    answer = _MARKUP.sub("", normalize_answer(text)).casefold()
    return " ".join(answer.strip(_EDGE_PUNCTUATION + string.whitespace).split())


def answer_stats(answers: Sequence[str], *, top: int = 10) -> dict[str, Any]:
    """Distribution of normalized answers: distinct non-empty answers over all answers (empty ones in
    the denominator), the empty count, the entropy in bits of the non-empty answers, and the ``top``
    most frequent answers with their shares of all answers (ties broken alphabetically)."""
    if not answers:
        raise ValueError("answer_stats needs at least one answer")
    counts = Counter(answer for answer in answers if answer)
    n_answered = sum(counts.values())
    entropy = -sum(c / n_answered * math.log2(c / n_answered) for c in counts.values()) if counts else None
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {
        "num_unique": len(counts),
        "unique_rate": len(counts) / len(answers),
        "empty_count": len(answers) - n_answered,
        "entropy_bits": entropy,
        "top_answers": [[answer, count / len(answers)] for answer, count in ranked[:top]],
    }


# ---- the evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OpenEndedSettings(SamplingSection):
    """The `evaluate.openended` config section plus the master seed."""

    num_samples: int = 100
    max_new_tokens: int = 16
    thresholds: tuple[float, ...] = PAPER_THRESHOLDS
    headline_threshold: float = 0.9
    max_prompts: int | None = None
    top_answers: int = 10
    # String Seed of Thought variants only: the protocol's system prompt (None = its default).
    ssot_system_prompt: str | None = None

    @property
    def all_thresholds(self) -> list[float]:
        """The configured thresholds, sorted, without duplicates, with the headline one included."""
        return sorted({*self.thresholds, self.headline_threshold})


def free_accelerator_memory() -> None:
    """Return the memory of dropped tensors to the GPU, so that vLLM can claim its share of it."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def stand_in_columns(model_record: Mapping[str, Any]) -> dict[str, Any]:
    """Columns that mark rows of a packaged, de-quantized model as an offline stand-in."""
    return {"source": model_record["source"], "stand_in": model_record["source"].startswith("packaged:")}


def evaluate_openended(*, model_record_path: str | Path, adapter_dir: str | Path | None, variant: str,
                       settings: OpenEndedSettings, prompts_csv: str | Path, samples_jsonl: str | Path,
                       device: str = "cpu", threads: int | None = None,
                       variant_files: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Support sizes and sampled answers of one (model, variant) on the open-ended prompts; writes one
    metric row per prompt and every raw answer with its seed. ``variant_files`` holds a baseline
    variant's inputs (a fitted temperature, an ATS head; a rule's Snakemake input works as is)."""
    opened = open_variant(model_record_path, variant, evaluation="openended", files=variant_files,
                          adapter_dir=adapter_dir, device=device, threads=threads, backend=settings.backend)
    model_record, tokenizer, model, chat = opened.record, opened.tokenizer, opened.model, opened.chat
    settings = replace(settings, backend=opened.backend)
    ssot = opened.kind.prompting == "ssot"
    prompts = openended_prompts()[: settings.max_prompts]
    formatted = [format_ssot_prompt(tokenizer, prompt, chat, settings.ssot_system_prompt) if ssot
                 else format_prompt(tokenizer, prompt, chat) for prompt in prompts]
    thresholds = settings.all_thresholds

    sizes = None
    if not ssot:
        started = time.perf_counter()
        logits = first_token_logits(model, tokenizer, formatted, batch_size=settings.batch_size)
        sizes = support_sizes(torch.softmax(logits / settings.temperature, dim=-1), thresholds)
        log.info("support sizes of %d prompts in %.1fs", len(prompts), time.perf_counter() - started)

    if settings.backend == "vllm":
        # vLLM samples with its own copy of the weights; the transformers one was for the support sizes.
        model = None
        free_accelerator_memory()
    sampler = make_sampler(settings, model, tokenizer, model_record, adapter_dir)
    params = settings.sampling
    marker = stand_in_columns(model_record)
    rows, samples = [], []
    for prompt_id, (category, prompt, text) in enumerate(zip(CATEGORIES, prompts, formatted)):
        started = time.perf_counter()
        key = prompt_key("openended", category)
        raw = sampler.sample(text, params, prompt_index=key)
        if ssot:
            read = read_outputs(tokenizer, raw, params.max_new_tokens)
            answer_texts = [answer.text or "" for answer, _ in read]
            errors = [answer.error or EMPTY_ANSWER for answer, _ in read]
        else:
            answer_texts, errors = raw, [EMPTY_ANSWER] * len(raw)
        answers = [normalize_answer(r) for r in answer_texts]
        canonical = [canonical_answer(r) for r in answer_texts]
        stats = answer_stats(answers, top=settings.top_answers)
        canonical_stats = answer_stats(canonical, top=settings.top_answers)
        row = {
            "model": model_record["name"], "variant": variant, **marker, "prompt_id": prompt_id,
            "category": category, "prompt": prompt,
            "support_size": None if ssot else int(sizes[prompt_id, thresholds.index(settings.headline_threshold)]),
            **{threshold_key(t): None if ssot else int(sizes[prompt_id, j]) for j, t in enumerate(thresholds)},
            "num_samples": len(raw),
            "num_unique": stats["num_unique"],
            "unique_rate": stats["unique_rate"],
            "num_unique_canonical": canonical_stats["num_unique"],
            "unique_rate_canonical": canonical_stats["unique_rate"],
            "empty_count": stats["empty_count"],
            "entropy_bits": stats["entropy_bits"],
            "entropy_bits_canonical": canonical_stats["entropy_bits"],
            "thinking_tag_count": sum(bool(THINK_TAG.search(r)) for r in raw),
            "top_answers": json.dumps(stats["top_answers"], ensure_ascii=False),
        }
        if ssot:
            row.update(support_skipped=SUPPORT_SKIPPED, **token_summary([counts for _, counts in read]))
        rows.append(row)
        samples.extend(
            {"model": model_record["name"], "variant": variant, "prompt_id": prompt_id, "category": category,
             "sample_index": i, "seed": seed, "raw_text": r, "answer": a, "canonical_answer": c,
             "error": None if a else error}
            for i, (seed, r, a, c, error) in enumerate(zip(sample_seeds(params, key), raw, answers, canonical, errors))
        )
        log.info("%s %s: support@%.2f=%s unique_rate=%.2f top=%s (%.1fs)", variant, category,
                 settings.headline_threshold, row["support_size"], row["unique_rate"],
                 stats["top_answers"][:3], time.perf_counter() - started)

    frame = pd.DataFrame(rows)
    write_jsonl(samples_jsonl, samples)
    write_csv(prompts_csv, frame)
    return frame


# ---- tables --------------------------------------------------------------------------------------


def openended_tables(prompt_csvs: Sequence[str | Path], prompts_out: str | Path,
                     summary_out: str | Path) -> pd.DataFrame:
    """Concatenate the per-prompt tables and summarize each (model, variant) over prompts.

    Support columns get the mean over prompts (``*_mean``) and the headline support also its median,
    min and max; the rates are means over prompts; ``empty_rate`` is pooled over all answers.
    """
    prompts = pd.concat([pd.read_csv(path, keep_default_na=False, na_values=[""]) for path in prompt_csvs],
                        ignore_index=True)
    support_columns = [c for c in prompts.columns if c.startswith("support_p")]
    summary_rows = []
    for (model, variant), group in prompts.groupby(["model", "variant"], sort=False):
        summary_rows.append({
            "model": model, "variant": variant, "source": group["source"].iloc[0],
            "stand_in": bool(group["stand_in"].iloc[0]), "num_prompts": len(group),
            "num_samples": int(group["num_samples"].iloc[0]),
            "support_size_mean": group["support_size"].mean(),
            "support_size_median": group["support_size"].median(),
            "support_size_min": group["support_size"].min(),
            "support_size_max": group["support_size"].max(),
            **{f"{c}_mean": group[c].mean() for c in support_columns},
            "unique_rate_mean": group["unique_rate"].mean(),
            "unique_rate_median": group["unique_rate"].median(),
            "unique_rate_canonical_mean": group["unique_rate_canonical"].mean(),
            "entropy_bits_mean": group["entropy_bits"].mean(),
            "empty_rate": group["empty_count"].sum() / group["num_samples"].sum(),
            "prompts_with_empty": int((group["empty_count"] > 0).sum()),
        })
    summary = pd.DataFrame(summary_rows)
    write_csv(prompts_out, prompts)
    write_csv(summary_out, summary)
    return summary
