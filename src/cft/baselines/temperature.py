"""Global temperature scaling: one temperature per model, fitted on train prompts.

The temperature T minimizes the mean exact trie KL (`cft.evaluation.exact.exact_trie_kl`, the
expectation of the soft adapter's training loss) over a family-balanced subset of the train prompts,
by bounded 1-D optimization over log T (scipy's `minimize_scalar`). The hidden states of every trie
node are computed once per prompt (the `PromptScorer` memoizes them); each trial temperature only
re-runs the output head. The fitted model is evaluated as the variant ``temperature``
(`cft.variants`), exactly like the adapters.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from cft.datasets import read_specs
from cft.evaluation.exact import NextTokenScorer, PromptScorer, exact_trie_kl, score_trie
from cft.io import environment_record, write_json
from cft.jobs import FitJob
from cft.models import ChatOptions, encode_prompt, format_prompt, load_frozen_base
from cft.targets import TargetSection
from cft.training.data import balanced_order
from cft.trie import TokenTrie

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TemperatureSettings(TargetSection):
    """The `baselines.temperature` config section plus the target of the tries (`evaluate.target`)."""

    num_train_prompts: int = 8
    min_temperature: float = 0.05
    max_temperature: float = 20.0
    xatol: float = 0.01
    seed: int = 11


def mean_trie_kl(cases: Sequence[tuple[NextTokenScorer, TokenTrie]]) -> Callable[[float], float]:
    """T -> mean exact trie KL of the cases (scorer, trie) at temperature T."""

    def objective(temperature: float) -> float:
        return float(np.mean([exact_trie_kl(score_trie(scorer, trie, temperature=temperature)).value
                              for scorer, trie in cases]))

    return objective


@dataclass(frozen=True)
class TemperatureFit:
    temperature: float
    objective: float
    objective_at_1: float
    evaluations: list[tuple[float, float]]


def fit_temperature(objective: Callable[[float], float], *, bounds: tuple[float, float],
                    xatol: float = 0.01) -> TemperatureFit:
    """The temperature in ``bounds`` minimizing ``objective``, searched on log T (xatol on log T).

    Bounded Brent search assumes one minimum in the interval; the trie KL as a function of T is a
    KL between a fixed target and a tempered softmax family, smooth with one minimum in practice.
    """
    low, high = bounds
    if not 0 < low < 1 < high:
        raise ValueError(f"temperature bounds must satisfy 0 < low < 1 < high, got {bounds}")
    evaluations: list[tuple[float, float]] = []

    def on_log_scale(log_t: float) -> float:
        value = objective(math.exp(log_t))
        evaluations.append((math.exp(log_t), value))
        return value

    at_1 = on_log_scale(0.0)
    result = minimize_scalar(on_log_scale, bounds=(math.log(low), math.log(high)), method="bounded",
                             options={"xatol": xatol})
    temperature, value = math.exp(float(result.x)), float(result.fun)
    # Never return something worse than the model itself.
    if at_1 <= value:
        temperature, value = 1.0, at_1
    return TemperatureFit(temperature, value, at_1, evaluations)


def fit_global_temperature(*, model_record_path: str | Path, prompts_path: str | Path,
                           settings: TemperatureSettings | Mapping[str, Any], out_json: str | Path,
                           device: str | None = None, threads: int | None = None) -> TemperatureFit:
    """Fit the base model's temperature on a family-balanced subset of ``prompts_path``; write JSON."""
    if not isinstance(settings, TemperatureSettings):
        settings = TemperatureSettings(**settings)
    record, tokenizer, model = load_frozen_base(model_record_path, device, threads)
    chat = ChatOptions(**record.get("chat", {}))
    specs = read_specs(prompts_path)
    chosen = balanced_order([s.family_id for s in specs], settings.seed)[: settings.num_train_prompts]

    started = time.perf_counter()
    cases = []
    for index in chosen:
        spec = specs[index]
        cases.append((PromptScorer(model, encode_prompt(tokenizer, format_prompt(tokenizer, spec.prompt, chat))),
                      settings.target.trie(spec, tokenizer)))
    fit = fit_temperature(mean_trie_kl(cases), bounds=(settings.min_temperature, settings.max_temperature),
                          xatol=settings.xatol)
    log.info("temperature %.4f: mean trie KL %.4f (T=1: %.4f), %d evaluations, %.0fs", fit.temperature,
             fit.objective, fit.objective_at_1, len(fit.evaluations), time.perf_counter() - started)
    write_json(out_json, {
        "model": record["name"], "temperature": fit.temperature, "mean_exact_trie_kl": fit.objective,
        "mean_exact_trie_kl_at_1": fit.objective_at_1,
        "evaluations": [{"temperature": t, "mean_exact_trie_kl": v} for t, v in fit.evaluations],
        "prompts": [specs[i].distribution_id for i in chosen], "settings": asdict(settings),
        "seconds": time.perf_counter() - started, "environment": environment_record(),
    })
    return fit


def fit_temperature_job(job: FitJob) -> TemperatureFit:
    """The workflow's job (the kind's `cft.variants.Fitter`): one temperature per model."""
    return fit_global_temperature(model_record_path=job.model_record_path, prompts_path=job.prompts_path,
                                  settings=job.settings, out_json=job.outputs["temperature"], device=job.device,
                                  threads=job.threads)
