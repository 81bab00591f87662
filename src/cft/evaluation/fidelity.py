"""Structured-sampling fidelity of one (model, variant): exact and sampled metrics per prompt.

For every test prompt this computes

* exact metrics (teacher-forced, no sampling noise; `cft.evaluation.exact`): the trie KL on the trie
  the soft adapter was trained on (exact expectation and the paper's 4-path estimate), and the model's
  exact distribution over the integer support or the digit intervals of width 10^-r, with its valid
  mass, digit KL and W1 to the target;
* sampled metrics (`cft.evaluation.sampling` + `metrics`): N answers per prompt with a seed each,
  parsed strictly; valid rate, W1 (raw, normalized by the target's mean absolute deviation about the
  median, and over the std), moment errors and a goodness-of-fit test.

It writes the raw answers (every one, with its seed, parse result and error code) and one metric row
per prompt. `evaluate_fidelity` evaluates one variant; `evaluate_fidelity_transforms` evaluates base
and its logit transforms (a fitted temperature, ATS heads) together on one loaded model, running each
prompt's exact tree through the decoder once for all of them, and writes the same files per variant.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cft.evaluation.exact import (
    PAPER_MC_SEEDS,
    PromptScorer,
    digit_interval_distribution,
    exact_trie_kl,
    integer_distribution,
    mc_trie_kl,
    score_trie,
)
from cft.evaluation.metrics import MIN_VALID, bootstrap_w1, sample_metrics, target_summary
from cft.evaluation.parsing import cannot_become_number, parse_sample
from cft.evaluation.sampling import HFSampler, SamplingSection, VLLMSampler, sample_seeds
from cft.io import read_jsonl, write_csv, write_json, write_jsonl
from cft.models import ChatOptions, encode_prompt, format_prompt
from cft.evaluation.aggregate import summarize
from cft.prompting.ssot import EXACT_SKIPPED, format_ssot_prompt, parse_ssot_sample, read_outputs, token_summary
from cft.prompts import PromptSpec
from cft.targets import TargetSection
from cft.trie import TokenTrie
from cft.variants import VariantKind, head_variants, open_variant, output_head, sampling_backend

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class FidelitySettings(SamplingSection, TargetSection):
    """The `evaluate.fidelity` config section plus the target it scores against (`evaluate.target`,
    the soft adapter's): the trie of the trie KL and the quantile window of the digit intervals."""

    exact: bool = True
    digit_resolution: int = 2
    max_digit_intervals: int = 6000
    mc_seeds: tuple[int, ...] = PAPER_MC_SEEDS
    # Stop a sampled answer once it can no longer parse as a number (`make_sampler`).
    stop_at_malformed: bool = True
    # String Seed of Thought variants only (`cft.prompting.ssot`): its system prompt, None = default.
    ssot_system_prompt: str | None = None


def prompt_key(split: str, distribution_id: str) -> int:
    """A stable integer per test prompt, so its sample seeds do not depend on which others are run."""
    digest = hashlib.sha256(f"{split}/{distribution_id}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def make_sampler(settings: SamplingSection, model, tokenizer, model_record: Mapping[str, Any],
                 adapter_dir: str | Path | None, *,
                 stop_when: Callable[[str], bool] | None = None) -> HFSampler | VLLMSampler | None:
    """The sampling backend: transformers (CPU/GPU) or vLLM (GPU, LoRA applied per request).

    ``stop_when`` stops a transformers row once it rejects the row's text (`HFSampler`); the
    fidelity driver passes `cannot_become_number`.
    """
    if settings.num_samples == 0:
        return None
    if settings.backend == "vllm":
        return VLLMSampler(model_record["path"], tokenizer, adapter_dir=adapter_dir)
    return HFSampler(model, tokenizer, batch_size=settings.batch_size, stop_when=stop_when)


NUMERIC_START = [*"0123456789", "-"]


def first_token_numeric_mass(scorer: PromptScorer, tokenizer) -> float:
    """The model's probability that its answer starts with a digit or '-' (base SmolLM2: about 2%)."""
    token_ids = sorted({ids[0] for ids in tokenizer(NUMERIC_START, add_special_tokens=False)["input_ids"]
                        if len(ids) == 1})
    (log_probs,) = scorer.log_probs([()], [token_ids])
    return float(np.exp(log_probs).sum())


def digit_resolution_for(space, settings: FidelitySettings) -> int | None:
    """The configured number of decimals r, lowered for wide targets until the grid has at most
    `max_digit_intervals` intervals, down to unit intervals (r = 0: Cauchy(3.5, 3) spans 1900 units);
    None when even those are more (LogNormal(2.5, 2) spans 5900 units: its exact digit metrics are left
    missing below a `max_digit_intervals` of 5900, its sampled ones stay).

    The window is the output space's (its first and last atoms span the quantile range).
    """
    low, high = float(space.values[0]), float(space.values[-1])
    for resolution in range(settings.digit_resolution, -1, -1):
        if (high - low) * 10**resolution <= settings.max_digit_intervals:
            return resolution
    return None


def exact_metrics(scorer: PromptScorer, tokenizer, spec: PromptSpec,
                  settings: FidelitySettings) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Exact metrics of one prompt from its scorer, and the model's and target's grid distributions
    (for figures; None when the target is too wide for a digit grid)."""
    family = spec.family
    dist = family.distribution(spec.param_dict)
    support = family.support(spec.param_dict)
    space = settings.target.space(spec)
    trie = TokenTrie.from_output_space(space, tokenizer)
    scores = score_trie(scorer, trie)
    trie_kl = exact_trie_kl(scores)
    resolution = None if family.integer_only else digit_resolution_for(space, settings)
    if family.integer_only:
        grid = integer_distribution(scorer, tokenizer, space, dist)
        grid_name = "integer support"
    elif resolution is not None:
        grid = digit_interval_distribution(scorer, tokenizer, dist, support, resolution=resolution,
                                           quantile_low=settings.target.quantile_low,
                                           quantile_high=settings.target.quantile_high)
        grid_name = f"digit intervals 1e-{resolution}"
    else:
        grid, grid_name = None, f"none: over {settings.max_digit_intervals} intervals even at 1e0"
    record = {
        "first_token_numeric_mass": first_token_numeric_mass(scorer, tokenizer),
        "exact_trie_kl": trie_kl.value,
        "exact_sequence_kl": trie_kl.sequence_kl,
        "trie_kl": mc_trie_kl(scores, seeds=settings.mc_seeds),
        "trie_atoms": trie.n_atoms,
        "trie_nodes": trie.n_nodes,
        "exact_grid": grid_name,
        "digit_resolution": resolution,
    }
    if grid is None:
        record.update(digit_kl=None, exact_valid_mass=None, exact_w1=None, exact_w1_norm=None)
        return record, None
    target = target_summary(dist, discrete=family.integer_only)
    w1 = grid.w1 if math.isfinite(grid.w1) else None
    record.update({
        "digit_kl": grid.digit_kl if math.isfinite(grid.digit_kl) else None,
        "exact_valid_mass": grid.valid_mass,
        "exact_w1": w1,
        "exact_w1_norm": w1 / target.normalizer if w1 is not None and target.normalizer > 0 else None,
    })
    distribution = {
        "labels": grid.labels,
        "points": grid.points.tolist(),
        "model_mass": grid.model_mass.tolist(),
        "target_mass": grid.target_mass.tolist(),
    }
    return record, distribution


def sampled_metrics(sampler: HFSampler | VLLMSampler, formatted: str, spec: PromptSpec, split: str,
                    settings: FidelitySettings, *, ssot_tokenizer=None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Sampled metrics of one prompt and its raw answers (every answer kept, with its verdict).

    With ``ssot_tokenizer`` the answers are String Seed of Thought outputs: the answer is read out of
    its tag, and the generated and extra (non-answer) tokens per sample are counted.
    """
    family = spec.family
    params = settings.sampling
    key = prompt_key(split, spec.distribution_id)
    seeds = sample_seeds(params, key)
    texts = sampler.sample(formatted, params, prompt_index=key)
    support = family.support(spec.param_dict)
    if ssot_tokenizer is None:
        parsed = [parse_sample(text, support, family.integer_only) for text in texts]
        extra = [{} for _ in texts]
    else:
        parsed, extra = ssot_verdicts(ssot_tokenizer, texts, support, family.integer_only, params.max_new_tokens)
    dist = family.distribution(spec.param_dict)
    record = sample_metrics(parsed, dist, discrete=family.integer_only, num_requested=params.num_samples)
    record["w1_norm"] = record.pop("w1_normalized")
    if ssot_tokenizer is not None:
        record.update(token_summary(extra))
    raw = [
        {"split": split, "distribution_id": spec.distribution_id, "sample_index": i, "seed": seed,
         "raw_text": text, "parsed_text": p.text, "parsed_value": p.value, "is_valid": p.is_valid,
         "error": p.error, **more}
        for i, (seed, text, p, more) in enumerate(zip(seeds, texts, parsed, extra))
    ]
    return record, raw


def ssot_verdicts(tokenizer, texts: Sequence[str], support, integer_only: bool, max_new_tokens: int):
    """Parsed SSoT answers and, per sample, its generated tokens and the tokens beyond the answer."""
    counts = [c for _, c in read_outputs(tokenizer, list(texts), max_new_tokens)]
    parsed = [parse_ssot_sample(text, support, integer_only, hit_token_limit=c["hit_token_limit"])
              for text, c in zip(texts, counts)]
    return parsed, counts


@dataclass(frozen=True)
class FidelityOutputs:
    """The three files a fidelity evaluation writes per (model, variant)."""

    prompts_csv: str | Path
    samples_jsonl: str | Path
    distributions_json: str | Path


@dataclass
class VariantRun:
    """One variant evaluated by a fidelity job: its kind, its settings (backend fallback applied),
    the output head it puts on the loaded model (None: the model as loaded), its sampler, and its
    rows, raw answers and grid distributions as they accumulate."""

    name: str
    kind: VariantKind
    settings: FidelitySettings
    head: torch.nn.Module | None = None
    sampler: HFSampler | VLLMSampler | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    raw_answers: list[dict[str, Any]] = field(default_factory=list)
    distributions: dict[str, Any] = field(default_factory=dict)


def add_sampler(run: VariantRun, model, tokenizer, model_record: Mapping[str, Any],
                adapter_dir: str | Path | None) -> None:
    # A numeric answer that can no longer parse is MALFORMED whatever follows: stop drawing it. SSoT
    # answers sit inside tags after free text, so they run to eos or the token limit.
    stop = run.settings.stop_at_malformed and run.kind.prompting != "ssot"
    run.sampler = make_sampler(run.settings, model, tokenizer, model_record, adapter_dir,
                               stop_when=cannot_become_number if stop else None)


def evaluate_fidelity(*, model_record_path: str | Path, adapter_dir: str | Path | None, variant: str,
                      test_sets: Mapping[str, str | Path], settings: FidelitySettings,
                      prompts_csv: str | Path, samples_jsonl: str | Path, distributions_json: str | Path,
                      device: str = "cpu", threads: int | None = None,
                      variant_files: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Evaluate one (model, variant) on the test splits; write per-prompt metrics and raw answers.

    ``variant_files`` holds the inputs of a baseline variant (`cft.variants`: a fitted temperature,
    an ATS head); the variant's kind decides the prompt protocol and whether exact metrics apply.
    """
    opened = open_variant(model_record_path, variant, evaluation="fidelity", files=variant_files,
                          adapter_dir=adapter_dir, device=device, threads=threads, backend=settings.backend)
    run = VariantRun(variant, opened.kind, replace(settings, backend=opened.backend))
    add_sampler(run, opened.model, opened.tokenizer, opened.record, adapter_dir)
    evaluate_runs(opened.model, opened.tokenizer, opened.record, [run], test_sets)
    return write_run(run, FidelityOutputs(prompts_csv, samples_jsonl, distributions_json))


def evaluate_fidelity_transforms(*, model_record_path: str | Path, variants: Mapping[str, Mapping[str, Any]],
                                 test_sets: Mapping[str, str | Path], settings: FidelitySettings,
                                 outputs: Mapping[str, FidelityOutputs], device: str = "cpu",
                                 threads: int | None = None) -> dict[str, pd.DataFrame]:
    """Evaluate base and logit transforms of it (a fitted temperature, ATS heads) on one loaded base
    model, with one tree forward per prompt for all of them.

    ``variants`` maps each variant name to its input files (``{}`` for base), ``outputs`` each name to
    its files. The variants only differ in the output head on the decoder's final hidden states
    (`cft.variants.shares_base_decoder`), so each prompt's trie and grids go through the decoder and
    the base head's matmul once, for the first variant, and every variant applies its transform to
    those logits (`PromptScorer.with_heads`). The decoder and the heads run on the same rows and
    chunks as in a separate `evaluate_fidelity` of each variant, so every exact metric is the same to
    the bit. Sampling stays per variant, with the variant's head on the model and the same seeds as
    its separate run.
    """
    if set(outputs) != set(variants):
        raise ValueError(f"outputs for {sorted(outputs)} but variants {sorted(variants)}")
    opened = open_variant(model_record_path, "base", evaluation="fidelity", device=device, threads=threads,
                          backend=settings.backend)
    model_record, tokenizer, model = opened.record, opened.tokenizer, opened.model
    runs = []
    for variant in head_variants(model, variants):
        run = VariantRun(variant.name, variant.kind,
                         replace(settings, backend=sampling_backend(variant.name, variant.kind, settings.backend)),
                         head=variant.head)
        add_sampler(run, model, tokenizer, model_record, None)
        runs.append(run)
    evaluate_runs(model, tokenizer, model_record, runs, test_sets)
    return {run.name: write_run(run, outputs[run.name]) for run in runs}


def evaluate_runs(model, tokenizer, model_record: Mapping[str, Any], runs: Sequence[VariantRun],
                  test_sets: Mapping[str, str | Path]) -> None:
    """Every prompt of every split for each run, prompt by prompt. Several runs read one decoder
    (`evaluate_fidelity_transforms`): their exact metrics share the prompt's scorer, its hidden states
    and its base-head matmul (`PromptScorer.with_heads`)."""
    heads = [run.head if run.head is not None else model.get_output_embeddings() for run in runs]
    for split, path in test_sets.items():
        for spec in (PromptSpec.from_dict(row["spec"]) for row in read_jsonl(path)):
            scorers: list[PromptScorer] = []

            def scorer_for(index: int, prompt_ids: Sequence[int]) -> PromptScorer:
                # Built by the first run that scores the prompt (the prompt is the same for all).
                if not scorers:
                    scorer = PromptScorer(model, prompt_ids)
                    scorers.extend(scorer.with_heads(heads) if len(heads) > 1 else [scorer])
                return scorers[index]

            for index, run in enumerate(runs):
                with output_head(model, run.head) if run.head is not None else nullcontext():
                    evaluate_prompt(run, model, tokenizer, model_record, split, spec,
                                    lambda prompt_ids, index=index: scorer_for(index, prompt_ids))


def evaluate_prompt(run: VariantRun, model, tokenizer, model_record: Mapping[str, Any], split: str,
                    spec: PromptSpec, scorer_for: Callable[[Sequence[int]], PromptScorer]) -> None:
    """One prompt's row, raw answers and grid distribution for ``run``, with the model's output head
    set to the run's; ``scorer_for(prompt_ids)`` gives the run's scorer of the prompt."""
    settings, kind = run.settings, run.kind
    family = spec.family
    chat = ChatOptions(**model_record.get("chat", {}))
    ssot = kind.prompting == "ssot"
    formatted = (format_ssot_prompt(tokenizer, spec.prompt, chat, settings.ssot_system_prompt) if ssot
                 else format_prompt(tokenizer, spec.prompt, chat))
    row = {"model": model_record["name"], "variant": run.name, "split": split,
           "family_id": family.family_id, "tier": family.tier, "kind": family.kind,
           "distribution_id": spec.distribution_id, "prompt": spec.prompt}
    started = time.perf_counter()
    if not kind.teacher_forceable:
        row.update(dict.fromkeys(EXACT_METRICS), exact_skipped=kind_exact_skipped(kind))
    elif settings.exact:
        exact, distribution = exact_metrics(scorer_for(encode_prompt(tokenizer, formatted)), tokenizer, spec,
                                            settings)
        row.update(exact)
        if distribution is not None:
            run.distributions[f"{split}/{spec.distribution_id}"] = distribution
    row["exact_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    if run.sampler is not None:
        sampled, raw = sampled_metrics(run.sampler, formatted, spec, split, settings,
                                       ssot_tokenizer=tokenizer if ssot else None)
        row.update(sampled)
        run.raw_answers.extend({"model": model_record["name"], "variant": run.name, **r} for r in raw)
    row["sampled_seconds"] = time.perf_counter() - started
    log.info("%s %s %s: exact %.1fs, sampled %.1fs, exact_trie_kl=%s digit_kl=%s valid_rate=%s",
             run.name, split, spec.distribution_id, row["exact_seconds"], row["sampled_seconds"],
             row.get("exact_trie_kl"), row.get("digit_kl"), row.get("valid_rate"))
    run.rows.append(row)


def write_run(run: VariantRun, outputs: FidelityOutputs) -> pd.DataFrame:
    frame = pd.DataFrame(run.rows)
    write_jsonl(outputs.samples_jsonl, run.raw_answers)
    write_json(outputs.distributions_json, run.distributions)
    write_csv(outputs.prompts_csv, frame)
    return frame


# The exact metrics a row has when they apply (left empty, with the reason, when they do not).
EXACT_METRICS = ("first_token_numeric_mass", "exact_trie_kl", "exact_sequence_kl", "trie_kl", "digit_kl",
                 "exact_valid_mass", "exact_w1", "exact_w1_norm")


def kind_exact_skipped(kind) -> str:
    return EXACT_SKIPPED if kind.prompting == "ssot" else f"{kind.name}: exact metrics do not apply"


# Metrics summarized across families: the median over families (the paper's headline) and the mean,
# with bootstrap intervals over prompts.
SUMMARY_METRICS = (
    "w1_norm", "exact_w1_norm", "trie_kl", "exact_trie_kl", "digit_kl", "valid_rate", "exact_valid_mass",
    "w1", "exact_w1", "w1_over_std", "mean_error", "variance_error", "first_token_numeric_mass",
)


SUMMARY_COLUMNS = {
    "median": "family_median_{}",
    "median_ci_low": "family_median_{}_ci_low",
    "median_ci_high": "family_median_{}_ci_high",
    "mean": "family_mean_{}",
    "mean_ci_low": "family_mean_{}_ci_low",
    "mean_ci_high": "family_mean_{}_ci_high",
}


SAMPLE_BOOTSTRAP_METRICS = ("w1", "w1_norm", "w1_over_std")


def sample_bootstrap_replicates(prompts: pd.DataFrame, samples_jsonls: Sequence[str | Path],
                                test_sets: Sequence[str | Path], *, n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """Per-prompt replicates of the sampled W1 metrics from resampling that prompt's valid answers.

    Returns, for each metric in SAMPLE_BOOTSTRAP_METRICS, an array (len(prompts), n_boot), NaN on
    rows with fewer than MIN_VALID valid answers (the metric itself is missing there).
    """
    specs = {spec.distribution_id: spec
             for path in test_sets for spec in (PromptSpec.from_dict(r["spec"]) for r in read_jsonl(path))}
    answers: dict[tuple[str, str, str, str], list[float]] = {}
    for path in samples_jsonls:
        for row in read_jsonl(path):
            if row["is_valid"]:
                key = (row["model"], row["variant"], row["split"], row["distribution_id"])
                answers.setdefault(key, []).append(row["parsed_value"])
    out = {metric: np.full((len(prompts), n_boot), np.nan) for metric in SAMPLE_BOOTSTRAP_METRICS}
    for i, row in enumerate(prompts.itertuples(index=False)):
        key = (row.model, row.variant, row.split, row.distribution_id)
        values = answers.get(key, [])
        if len(values) < MIN_VALID or row.distribution_id not in specs:
            continue
        spec = specs[row.distribution_id]
        rng = np.random.default_rng([seed, zlib.crc32("\x1f".join(key).encode())])
        w1 = bootstrap_w1(values, spec.family.distribution(spec.param_dict), n_boot=n_boot, rng=rng)
        out["w1"][i] = w1
        normalizer, variance = row.w1_normalizer_value, row.target_variance
        if pd.notna(normalizer) and normalizer > 0:
            out["w1_norm"][i] = w1 / normalizer
        if pd.notna(variance) and variance > 0:
            out["w1_over_std"][i] = w1 / math.sqrt(variance)
    for replicates in out.values():
        replicates[~np.isfinite(replicates)] = np.nan
    return out


TIMING_COLUMNS = ("exact_seconds", "sampled_seconds")


def fidelity_tables(prompt_csvs: Sequence[str | Path], prompts_out: str | Path, summary_out: str | Path,
                    *, samples_jsonls: Sequence[str | Path] = (), test_sets: Sequence[str | Path] = (),
                    n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Concatenate per-prompt rows of every (model, variant) and summarize per (model, variant, split).

    The summary has, for every metric m, ``family_median_m`` and ``family_mean_m`` (family = mean
    over its prompts; then median or mean over families, missing values skipped and counted) with 95%
    bootstrap intervals, plus ``valid_rate`` and ``exact_valid_mass`` as family-balanced means. With
    the raw answers (``samples_jsonls``) and the test sets, the intervals of the sampled W1 metrics
    resample the answers of each prompt as well as the prompts.
    """
    # The per-variant files keep each prompt's evaluation time; the table leaves it out, so that a
    # rerun on unchanged inputs writes the same table (results/manifest.json hashes it).
    prompts = pd.concat([pd.read_csv(path) for path in prompt_csvs], ignore_index=True)
    prompts = prompts.drop(columns=[c for c in TIMING_COLUMNS if c in prompts.columns])
    metrics = [m for m in SUMMARY_METRICS if m in prompts.columns]
    replicates = (sample_bootstrap_replicates(prompts, samples_jsonls, test_sets, n_boot=n_boot, seed=seed)
                  if samples_jsonls else None)
    long = summarize(prompts, metrics, n_boot=n_boot, seed=seed, replicates=replicates)
    rows = []
    for key, group in long.groupby(["model", "variant", "split"], sort=False):
        row = dict(zip(["model", "variant", "split"], key))
        row["n_prompts"] = int(group["n_prompts"].iloc[0])
        for _, stat in group.iterrows():
            metric = stat["metric"]
            for column, template in SUMMARY_COLUMNS.items():
                row[template.format(metric)] = stat[column]
            row[f"n_missing_{metric}"] = int(stat["n_missing"])
        for metric in ("valid_rate", "exact_valid_mass"):
            if f"family_mean_{metric}" in row:
                row[metric] = row[f"family_mean_{metric}"]
        rows.append(row)
    summary = pd.DataFrame(rows)
    write_csv(prompts_out, prompts)
    write_csv(summary_out, summary)
    return summary
