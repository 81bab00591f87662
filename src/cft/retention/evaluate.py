"""Drivers of the retention rules: prepare the task items, evaluate one (model, variant), tabulate.

A fine-tuned variant "retains" the base model's abilities when its task scores and perplexity stay
where the base model's are; the tables report every variant with its difference to `base`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cft.evaluations import SharedDecoderJob, VariantJob
from cft.io import read_jsonl, write_csv, write_jsonl
from cft.retention import irt
from cft.retention.answers import extract_flexible, extract_strict
from cft.retention.calibration import brier_score, choice_probabilities, expected_calibration_error
from cft.retention.perplexity import perplexity_rows
from cft.retention.scoring import GreedyGenerator, LoglikelihoodScorer
from cft.retention.tasks import GenerationItem, MultipleChoiceItem, get_task, item_from_dict, load_items
from cft.variants import decoder_heads, greedy_is_base, head_variants, open_variant, output_head

log = logging.getLogger(__name__)

# --- preparation -----------------------------------------------------------------------------------

def prepare_tinybench_items(settings: Mapping[str, Any], out_path: str | Path) -> int:
    """Load every configured task once (hub, local folder or vendored stand-in) and write its items.

    Running this before any model is loaded makes a missing dataset fail in seconds, with the message
    that says how to provide it.
    """
    rows = []
    for name in settings["tasks"]:
        task = get_task(name)
        items = load_items(name, settings["data_dir"], settings["limits"].get(name))
        rows.extend({"task": name, **item.to_dict()} for item in items)
        log.info("%s: %d items%s", name, len(items), " (stand-in)" if task.stand_in else "")
    write_jsonl(out_path, rows)
    return len(rows)


# --- scoring one variant ---------------------------------------------------------------------------

def score_multiple_choice(scorer: LoglikelihoodScorer, item: MultipleChoiceItem, metric: str) -> dict[str, Any]:
    """Per-choice log-likelihoods, the answer distribution and the item's score under `metric`."""
    (raw,) = choice_loglikelihoods(lambda context, continuations: [scorer.score(context, continuations)], item)
    return choice_example(item, raw, metric)


def score_multiple_choice_heads(scorer: LoglikelihoodScorer, item: MultipleChoiceItem,
                                metric: str) -> list[dict[str, Any]]:
    """`score_multiple_choice` under each output head of the scorer's model, from the same forwards."""
    return [choice_example(item, raw, metric) for raw in choice_loglikelihoods(scorer.score_heads, item)]


def choice_loglikelihoods(score_heads: Callable[[str, list[str]], list[list[float]]],
                          item: MultipleChoiceItem) -> np.ndarray:
    """[heads, choices] summed log-likelihoods of the item's choices, ``score_heads(context,
    continuations)`` giving each head's scores of continuations after one context."""
    raw = None
    # Choices that share a context share its forward pass (all but Winogrande's).
    by_context: dict[str, list[int]] = {}
    for i, choice in enumerate(item.choices):
        by_context.setdefault(choice.context, []).append(i)
    for context, indices in by_context.items():
        heads = score_heads(context, [item.choices[i].continuation for i in indices])
        if raw is None:
            raw = np.empty((len(heads), len(item.choices)))
        raw[:, indices] = heads
    return raw


def choice_example(item: MultipleChoiceItem, raw: np.ndarray, metric: str) -> dict[str, Any]:
    """An item's row from its choices' summed log-likelihoods ``raw``."""
    normalized = raw / np.array([max(len(c.text), 1) for c in item.choices])
    probs = choice_probabilities(raw)
    if metric == "mc2":
        score = float(probs[np.asarray(item.labels) > 0].sum())
    else:
        predicted = int(np.argmax(normalized if metric == "acc_norm" else raw))  # ties: first index
        score = float(predicted == item.gold)
    return {
        "item_id": item.item_id, "score": score, "gold": item.gold,
        "loglikelihoods": raw.tolist(), "normalized": normalized.tolist(), "probabilities": probs.tolist(),
        "argmax_correct": float(int(np.argmax(raw)) == item.gold),
        "confidence": float(probs.max()),
    }


def task_rows(task_name: str, examples: Sequence[Mapping[str, Any]], parameters) -> list[dict]:
    """The task's table rows: one for a multiple-choice task, strict and flexible for a generation task."""
    task = get_task(task_name)
    base = {"task": task_name, "benchmark": task.benchmark or "", "stand_in": task.stand_in,
            "num_items": len(examples)}
    if task.kind == "generation":
        rows = []
        for mode in ("strict", "flexible"):
            correct = [float(e[f"{mode}_correct"]) for e in examples]
            failures = [e[f"{mode}_prediction"] is None for e in examples]
            rows.append({**base, "metric": f"exact_match_{mode}", "accuracy": float(np.mean(correct)),
                         "raw_accuracy": float(np.mean(correct)), "invalid_rate": float(np.mean(failures)),
                         **irt_columns(task, correct, parameters)})
        return rows
    scores = [e["score"] for e in examples]
    gold = [e["gold"] for e in examples]
    return [{**base, "metric": task.metric, "accuracy": float(np.mean(scores)),
             "raw_accuracy": float(np.mean([e["argmax_correct"] for e in examples])), "invalid_rate": 0.0,
             "ece": expected_calibration_error([e["confidence"] for e in examples],
                                               [e["argmax_correct"] for e in examples]),
             "brier": brier_score([e["probabilities"] for e in examples], gold),
             **irt_columns(task, scores, parameters)}]


def irt_columns(task, scores: Sequence[float], parameters) -> dict[str, float | None]:
    """gp-IRT estimates for a real tinyBenchmarks task with all 100 items and a parameter file."""
    if task.benchmark is None or parameters is None or len(scores) != irt.ITEMS_PER_SCENARIO:
        return {"irt": None, "pirt": None, "gpirt": None}
    estimates = irt.estimate(scores, task.benchmark, parameters)
    return {"irt": estimates.irt, "pirt": estimates.pirt, "gpirt": estimates.gpirt}


def items_by_task(items_path: str | Path) -> dict[str, list]:
    by_task: dict[str, list] = {}
    for row in read_jsonl(items_path):
        by_task.setdefault(row["task"], []).append(item_from_dict(row))
    return by_task


def evaluate_tinybench(*, model_record_path: str | Path, variant_files: Mapping[str, Any], variant: str,
                       items_path: str | Path, settings: Mapping[str, Any], tasks_csv: str | Path,
                       examples_jsonl: str | Path, device: str | None = None, threads: int | None = None) -> pd.DataFrame:
    """Score every prepared item with one (model, variant); write per-item details and per-task rows.

    `variant_files` are the variant's inputs by key (a rule's `snakemake.input` works as is).
    """
    # Read the parameter file first: a wrong path should not cost a model load.
    parameters = irt.load_parameters(settings["irt_parameters"]) if settings["irt_parameters"] else None
    opened = open_variant(model_record_path, variant, evaluation="tinybench", files=variant_files, device=device,
                          threads=threads)
    model_record, tokenizer, model, chat = opened.record, opened.tokenizer, opened.model, opened.chat
    use_chat = settings["use_chat_template"]
    scorer = LoglikelihoodScorer(model, tokenizer, chat, use_chat_template=use_chat)
    generator = GreedyGenerator(model, tokenizer, chat, max_new_tokens=settings["max_new_tokens"],
                                batch_size=settings["batch_size"], use_chat_template=use_chat)
    examples = {}
    for task_name, items in items_by_task(items_path).items():
        task = get_task(task_name)
        if task.kind == "generation":
            responses = generator.generate([item.prompt for item in items])
            examples[task_name] = [generation_example(item, response)
                                   for item, response in zip(items, responses, strict=True)]
        else:
            examples[task_name] = [score_multiple_choice(scorer, item, task.metric) for item in items]
    return write_tinybench(model_record["name"], variant, examples, parameters, tasks_csv, examples_jsonl)


def evaluate_tinybench_shared(*, model_record_path: str | Path, variants: Mapping[str, Mapping[str, Any]],
                              items_path: str | Path, settings: Mapping[str, Any],
                              outputs: Mapping[str, Mapping[str, str | Path]], device: str | None = None,
                              threads: int | None = None) -> dict[str, pd.DataFrame]:
    """`evaluate_tinybench` of base and its logit transforms (`variants`: name -> input files, {} for
    base; `outputs`: name -> its ``tasks`` and ``examples`` paths) on one loaded base model.

    The multiple-choice log-likelihoods of every variant come from one decoder forward per context
    and per batch of continuations, with the variants' heads on its final hidden states
    (`cft.variants.decoder_heads`). The greedy answers of the generation tasks are decoded once with
    base's head and shared by every variant whose greedy decoding is base's (a rank-preserving
    transform, `cft.variants.greedy_is_base`); any other variant decodes with its own head.
    """
    if set(outputs) != set(variants):
        raise ValueError(f"outputs for {sorted(outputs)} but variants {sorted(variants)}")
    parameters = irt.load_parameters(settings["irt_parameters"]) if settings["irt_parameters"] else None
    opened = open_variant(model_record_path, "base", evaluation="tinybench", device=device, threads=threads)
    model_record, tokenizer, model, chat = opened.record, opened.tokenizer, opened.model, opened.chat
    use_chat = settings["use_chat_template"]
    resolved = head_variants(model, variants)
    fanout = decoder_heads(model, resolved)
    examples: dict[str, dict[str, list]] = {name: {} for name in variants}
    for task_name, items in items_by_task(items_path).items():
        task = get_task(task_name)
        if task.kind == "generation":
            prompts = [item.prompt for item in items]
            decoded: dict[str, list[str]] = {}
            for variant in resolved:
                name, shared = variant.name, greedy_is_base(variant.kind)
                key = "base" if shared else name
                if key not in decoded:
                    with output_head(model, model.get_output_embeddings() if shared else variant.head):
                        decoded[key] = GreedyGenerator(model, tokenizer, chat, max_new_tokens=settings["max_new_tokens"],
                                                       batch_size=settings["batch_size"],
                                                       use_chat_template=use_chat).generate(prompts)
                examples[name][task_name] = [generation_example(item, response)
                                             for item, response in zip(items, decoded[key], strict=True)]
            log.info("%s: %d greedy decodings for %d variants", task_name, len(decoded), len(variants))
        else:
            with output_head(model, fanout):
                scorer = LoglikelihoodScorer(model, tokenizer, chat, use_chat_template=use_chat)
                per_item = [score_multiple_choice_heads(scorer, item, task.metric) for item in items]
            for index, name in enumerate(variants):
                examples[name][task_name] = [heads[index] for heads in per_item]
    return {name: write_tinybench(model_record["name"], name, examples[name], parameters,
                                  outputs[name]["tasks"], outputs[name]["examples"]) for name in variants}


def write_tinybench(model: str, variant: str, examples: Mapping[str, Sequence[Mapping[str, Any]]], parameters,
                    tasks_csv: str | Path, examples_jsonl: str | Path) -> pd.DataFrame:
    """The per-task rows and per-item details of one (model, variant) from its examples by task."""
    rows, details = [], []
    for task_name, task_examples in examples.items():
        new_rows = task_rows(task_name, task_examples, parameters)
        for r in new_rows:
            log.info("%s %s %s: %.3f", variant, task_name, r["metric"], r["accuracy"])
        rows.extend(new_rows)
        details.extend({"model": model, "variant": variant, "task": task_name, **e} for e in task_examples)
    table = pd.DataFrame([{"model": model, "variant": variant, **r} for r in rows])
    write_jsonl(examples_jsonl, details)
    write_csv(tasks_csv, table)
    return table


def generation_example(item: GenerationItem, response: str) -> dict[str, Any]:
    strict, strict_reason = extract_strict(response)
    flexible, flexible_reason = extract_flexible(response)
    return {
        "item_id": item.item_id, "gold": item.gold, "response": response,
        "strict_prediction": strict, "strict_invalid_reason": strict_reason,
        "strict_correct": strict is not None and strict == item.gold,
        "flexible_prediction": flexible, "flexible_invalid_reason": flexible_reason,
        "flexible_correct": flexible is not None and flexible == item.gold,
    }


def evaluate_perplexity(*, model_record_path: str | Path, variant_files: Mapping[str, Any], variant: str,
                        root: str | Path, settings: Mapping[str, Any], stand_in: bool,
                        slices_csv: str | Path, device: str | None = None, threads: int | None = None) -> pd.DataFrame:
    """Perplexity and bits per byte of one (model, variant) on every configured slice, pooled in `all`."""
    opened = open_variant(model_record_path, variant, evaluation="perplexity", files=variant_files, device=device,
                          threads=threads)
    (rows,) = perplexity_rows(opened.model, opened.tokenizer, root, settings["slices"], settings)
    return write_perplexity(opened.record["name"], variant, rows, settings, stand_in, slices_csv)


def evaluate_perplexity_shared(*, model_record_path: str | Path, variants: Mapping[str, Mapping[str, Any]],
                               root: str | Path, settings: Mapping[str, Any], stand_in: bool,
                               outputs: Mapping[str, Mapping[str, str | Path]], device: str | None = None,
                               threads: int | None = None) -> dict[str, pd.DataFrame]:
    """`evaluate_perplexity` of base and its logit transforms (`variants`: name -> input files, {} for
    base; `outputs`: name -> its ``slices`` path), every window through the decoder once with all
    their heads on its final hidden states (`cft.variants.decoder_heads`)."""
    if set(outputs) != set(variants):
        raise ValueError(f"outputs for {sorted(outputs)} but variants {sorted(variants)}")
    opened = open_variant(model_record_path, "base", evaluation="perplexity", device=device, threads=threads)
    with output_head(opened.model, decoder_heads(opened.model, head_variants(opened.model, variants))):
        per_head = perplexity_rows(opened.model, opened.tokenizer, root, settings["slices"], settings)
    return {name: write_perplexity(opened.record["name"], name, rows, settings, stand_in, outputs[name]["slices"])
            for name, rows in zip(variants, per_head, strict=True)}


def write_perplexity(model: str, variant: str, rows: Sequence[Mapping[str, Any]], settings: Mapping[str, Any],
                     stand_in: bool, slices_csv: str | Path) -> pd.DataFrame:
    table = pd.DataFrame([{"model": model, "variant": variant, "stand_in": stand_in, "split": settings["split"],
                           "context_length": settings["context_length"], "stride": settings["stride"], **r}
                          for r in rows])
    write_csv(slices_csv, table)
    return table


def run_tinybench(job: VariantJob) -> None:
    """The workflow's job (`cft.evaluations`): every prepared item, scored with one (model, variant)."""
    evaluate_tinybench(**job.variant_kwargs(), items_path=job.inputs["task_items"], settings=job.settings,
                       tasks_csv=job.outputs["tasks"], examples_jsonl=job.outputs["examples"])


def run_perplexity(job: VariantJob) -> None:
    """The workflow's job (`cft.evaluations`): one (model, variant) on the configured PALOMA folder, or
    on the stand-in corpus a rule writes (its input ``data``) when none is configured."""
    stand_in = job.settings["root"] is None
    evaluate_perplexity(**job.variant_kwargs(), root=job.inputs["data"] if stand_in else job.settings["root"],
                        settings=job.settings, stand_in=stand_in, slices_csv=job.outputs["slices"])


def run_tinybench_shared(job: SharedDecoderJob) -> None:
    """The workflow's job for base and its logit transforms together (`cft.evaluations`)."""
    evaluate_tinybench_shared(**job.variants_kwargs(), items_path=job.inputs["task_items"], settings=job.settings,
                              outputs=job.outputs)


def run_perplexity_shared(job: SharedDecoderJob) -> None:
    """The workflow's job for base and its logit transforms together (`cft.evaluations`)."""
    stand_in = job.settings["root"] is None
    evaluate_perplexity_shared(**job.variants_kwargs(),
                               root=job.inputs["data"] if stand_in else job.settings["root"],
                               settings=job.settings, stand_in=stand_in, outputs=job.outputs)


# --- tables ----------------------------------------------------------------------------------------

def with_base_deltas(table: pd.DataFrame, keys: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """Add `delta_<value>` = variant minus the same model's `base` row with the same keys."""
    base = table[table["variant"] == "base"][["model", *keys, *values]]
    merged = table.merge(base, on=["model", *keys], how="left", suffixes=("", "_base"))
    for value in values:
        merged[f"delta_{value}"] = merged[value] - merged[f"{value}_base"]
    return merged.drop(columns=[f"{v}_base" for v in values])


def retention_task_table(paths: Sequence[str | Path], out_csv: str | Path) -> pd.DataFrame:
    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    values = [c for c in ("accuracy", "gpirt", "ece", "brier") if c in table]
    table = with_base_deltas(table, ["task", "metric"], values)
    write_csv(out_csv, table)
    return table


def retention_perplexity_table(paths: Sequence[str | Path], out_csv: str | Path) -> pd.DataFrame:
    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    table = with_base_deltas(table, ["slice"], ["perplexity", "bits_per_byte"])
    write_csv(out_csv, table)
    return table
