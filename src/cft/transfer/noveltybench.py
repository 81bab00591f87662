"""NoveltyBench (Zhang et al., 2025): how many meaningfully different, good answers k samples hold.

Three stages, each writing NoveltyBench's own file format so that results compare with its leaderboard:

1. `generate`: k answers per prompt at temperature 1 -> ``generations.jsonl`` rows
   ``{id, prompt, model, generations}`` (plus the variant, raw texts and per-sample seeds).
2. `partition_and_score`: equivalence classes (`cft.transfer.similarity`) -> ``partitions.jsonl``
   (``partition``, ``distinct``); 1-10 ratings (`cft.transfer.quality`) -> ``scores.jsonl``
   (``generation_scores``, ``partition_scores``, ``utility``) and ``summary.json``
   (``mean_distinct``, ``mean_utility``).
3. `noveltybench_table`: one row per (model, variant, prompt set).

``distinct`` is the number of classes. NoveltyBench's partition files write one less
(``max(partition)``) while its summaries count classes; this code counts classes everywhere.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cft.devices import use_threads
from cft.evaluation.sampling import HFSampler, SamplingParams, VLLMSampler, sample_seeds
from cft.io import environment_record, read_json, read_jsonl, write_csv, write_json, write_jsonl
from cft.models import format_prompt, strip_thinking
from cft.transfer.quality import QualityRater, make_rater
from cft.transfer.similarity import SimilarityScorer, make_similarity, partition_responses

log = logging.getLogger(__name__)

# Row counts of NoveltyBench's two prompt sets; a file with another count is not the benchmark.
PROMPT_SET_SIZES = {"curated": 100, "wildchat": 1000}
PROMPT_SET_FILES = {"curated": "curated.jsonl", "wildchat": "wildchat-1k.jsonl"}
PATIENCE = 0.8


@dataclass(frozen=True, kw_only=True)
class GenerationSettings:
    """The sampling part of `evaluate.noveltybench`."""

    k: int = 10
    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 10
    backend: str = "hf"
    seed: int = 11

    @property
    def sampling(self) -> SamplingParams:
        return SamplingParams(num_samples=self.k, max_new_tokens=self.max_new_tokens,
                              temperature=self.temperature, top_p=self.top_p, top_k=0, seed=self.seed)


def balanced_subset(prompts: Sequence[dict[str, Any]], num_prompts: int) -> list[dict[str, Any]]:
    """``num_prompts`` prompts taken round-robin over the categories (in order of first appearance,
    file order within each); without categories (WildChat) simply the first ones.

    The curated file lists its 20 Creativity prompts first, so its head alone would test only one of
    the six kinds of request.
    """
    by_category: dict[Any, list[dict[str, Any]]] = {}
    for prompt in prompts:
        by_category.setdefault(prompt["metadata"].get("category"), []).append(prompt)
    queues = list(by_category.values())
    chosen: list[dict[str, Any]] = []
    for rank in range(max(map(len, queues), default=0)):
        chosen.extend(queue[rank] for queue in queues if rank < len(queue))
    return chosen[:num_prompts]


def load_prompts(path: str | Path, prompt_set: str, num_prompts: int | None = None) -> list[dict[str, Any]]:
    """The prompt set's rows (id, stripped prompt, metadata), validated; all of them in file order, or
    a category-balanced subset of ``num_prompts`` (`balanced_subset`)."""
    rows = read_jsonl(path)
    expected = PROMPT_SET_SIZES[prompt_set]
    if len(rows) != expected:
        raise ValueError(f"{path}: NoveltyBench's {prompt_set} set has {expected} prompts, found {len(rows)}")
    prompts = []
    for number, row in enumerate(rows, start=1):
        prompt_id, text = str(row.get("id", "")).strip(), str(row.get("prompt", "")).strip()
        if not prompt_id or not text:
            raise ValueError(f"{path}: row {number} has an empty id or prompt")
        prompts.append({"id": prompt_id, "prompt": text,
                        "metadata": {k: v for k, v in row.items() if k not in ("id", "prompt")}})
    return prompts if num_prompts is None else balanced_subset(prompts, num_prompts)


def prompt_key(prompt_id: str) -> int:
    """A stable integer per prompt, so its seeds do not depend on which other prompts are run."""
    return int.from_bytes(hashlib.sha256(f"noveltybench/{prompt_id}".encode()).digest()[:6], "big")


def generate(*, model_record_path: str | Path, variant: str, variant_files: Mapping[str, Any],
             prompts_path: str | Path, prompt_set: str, num_prompts: int | None,
             settings: GenerationSettings, out_path: str | Path, device: str | None = None,
             threads: int | None = None) -> list[dict[str, Any]]:
    """k answers per prompt from one (model, variant), written as NoveltyBench generation rows.

    ``variant_files`` holds the variant's inputs by key (``adapter``, ``temperature``, ...; a rule's
    Snakemake input works as is), as `cft.variants.load_variant` takes them.
    """
    from cft.variants import open_variant

    opened = open_variant(model_record_path, variant, evaluation="noveltybench", files=variant_files, device=device,
                          threads=threads, backend=settings.backend, in_process_model=False)
    record, tokenizer, chat = opened.record, opened.tokenizer, opened.chat
    if opened.backend == "vllm":
        sampler = VLLMSampler(record["path"], tokenizer, adapter_dir=opened.adapter_dir)
    else:
        sampler = HFSampler(opened.model, tokenizer, batch_size=settings.batch_size)
    params = settings.sampling
    rows = []
    for prompt in load_prompts(prompts_path, prompt_set, num_prompts):
        started = time.perf_counter()
        key = prompt_key(prompt["id"])
        raw = sampler.sample(format_prompt(tokenizer, prompt["prompt"], chat), params, prompt_index=key)
        rows.append({"id": prompt["id"], "prompt": prompt["prompt"], "model": record["name"],
                     "variant": variant, "prompt_set": prompt_set, "metadata": prompt["metadata"],
                     "generations": [strip_thinking(text) for text in raw], "raw_generations": raw,
                     "seeds": sample_seeds(params, key)})
        log.info("%s %s %s: %d generations in %.1fs", record["name"], variant, prompt["id"], len(raw),
                 time.perf_counter() - started)
    write_jsonl(out_path, rows)
    return rows


def scores_from_partition(partition: Sequence[int], ratings: Sequence[int]) -> tuple[list[int], list[int]]:
    """(generation_scores, partition_scores): only the first member of each class keeps its rating.

    Class ids must appear in order 0, 1, 2, ... (as `partition_responses` numbers them); anything
    else would credit a class to the wrong generation, so it raises.
    """
    if len(partition) != len(ratings):
        raise ValueError(f"{len(partition)} class ids for {len(ratings)} ratings")
    generation_scores, partition_scores = [], []
    for class_id, rating in zip(partition, ratings, strict=True):
        if class_id == len(partition_scores):
            generation_scores.append(int(rating))
            partition_scores.append(int(rating))
        elif 0 <= class_id < len(partition_scores):
            generation_scores.append(0)
        else:
            raise RuntimeError(f"class ids are not numbered in order of first appearance: {list(partition)}")
    return generation_scores, partition_scores


def utility(generation_scores: Sequence[float], patience: float = PATIENCE) -> float:
    """The patience-weighted mean of generation scores: sum s_i p^i / sum p^i (NoveltyBench, p=0.8)."""
    weights = patience ** np.arange(len(generation_scores))
    return float(np.dot(weights, np.asarray(generation_scores, dtype=np.float64)) / weights.sum())


def summarize(score_rows: Sequence[Mapping[str, Any]]) -> dict[str, float | int]:
    """NoveltyBench's summary: mean number of classes and mean utility over prompts."""
    if not score_rows:
        raise ValueError("no scored prompts to summarize")
    return {
        "num_prompts": len(score_rows),
        "mean_distinct": float(np.mean([len(row["partition_scores"]) for row in score_rows])),
        "mean_utility": float(np.mean([row["utility"] for row in score_rows])),
    }


def judges_record(scorer: SimilarityScorer, rater: QualityRater) -> dict[str, Any]:
    """Which classifier and rater produced a result, and whether they are offline stand-ins."""
    return {
        "classifier": {"name": scorer.name, "threshold": scorer.threshold, "stand_in": scorer.stand_in},
        "reward": {"name": rater.name, "thresholds": list(rater.thresholds), "stand_in": rater.stand_in},
        "stand_in": scorer.stand_in or rater.stand_in,
    }


def partition_and_score(generation_rows: Sequence[Mapping[str, Any]], scorer: SimilarityScorer,
                        rater: QualityRater, patience: float = PATIENCE
                        ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(partition rows, score rows) in NoveltyBench's formats; every generation is rated."""
    partition_rows, score_rows = [], []
    for row in generation_rows:
        partition = partition_responses(row["generations"], scorer)
        partitioned = {**row, "partition": partition, "distinct": max(partition) + 1}
        rated = rater.rate(row["prompt"], row["generations"])
        generation_scores, partition_scores = scores_from_partition(partition, rated.ratings)
        partition_rows.append(partitioned)
        score_rows.append({**partitioned, "raw_rewards": rated.raw_rewards, "ratings": rated.ratings,
                           "invalid_ratings": {str(i): reason for i, reason in rated.invalid.items()},
                           "generation_scores": generation_scores, "partition_scores": partition_scores,
                           "utility": utility(generation_scores, patience)})
    return partition_rows, score_rows


def evaluate_noveltybench(*, generations_path: str | Path, model_record_path: str | Path,
                          classifier: Mapping[str, Any], reward: Mapping[str, Any], patience: float,
                          partitions_path: str | Path, scores_path: str | Path, summary_path: str | Path,
                          device: str | None = None, threads: int | None = None) -> dict[str, Any]:
    """Partition and score one generations file; write partitions, scores and summary.json."""
    if threads:
        use_threads(threads)
    rows = read_jsonl(generations_path)
    scorer = make_similarity(classifier, device)
    rater = make_rater(reward, read_json(model_record_path), device)
    started = time.perf_counter()
    partition_rows, score_rows = partition_and_score(rows, scorer, rater, patience)
    log.info("partitioned and scored %d prompts in %.1fs", len(rows), time.perf_counter() - started)
    first = rows[0] if rows else {}
    summary = {
        **summarize(score_rows),
        "benchmark": "noveltybench",
        "model": first.get("model"),
        "variant": first.get("variant"),
        "prompt_set": first.get("prompt_set"),
        "k": len(first.get("generations", [])),
        "patience": patience,
        "num_invalid_ratings": sum(len(row["invalid_ratings"]) for row in score_rows),
        **judges_record(scorer, rater),
        "environment": environment_record(),
    }
    write_jsonl(partitions_path, partition_rows)
    write_jsonl(scores_path, score_rows)
    write_json(summary_path, summary)
    return summary


TABLE_COLUMNS = ["model", "variant", "prompt_set", "num_prompts", "k", "mean_distinct", "mean_utility",
                 "patience", "num_invalid_ratings", "classifier", "classifier_stand_in", "reward",
                 "reward_stand_in", "stand_in"]


def noveltybench_table(summary_paths: Sequence[str | Path], out_csv: str | Path) -> pd.DataFrame:
    """One row per summary.json, judges named and stand-ins flagged in their own columns."""
    rows = []
    for path in summary_paths:
        summary = read_json(path)
        rows.append({**{key: summary[key] for key in TABLE_COLUMNS if key in summary},
                     "classifier": summary["classifier"]["name"],
                     "classifier_stand_in": summary["classifier"]["stand_in"],
                     "reward": summary["reward"]["name"], "reward_stand_in": summary["reward"]["stand_in"]})
    frame = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    write_csv(out_csv, frame)
    return frame
