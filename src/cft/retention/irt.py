"""The tinyBenchmarks performance estimators: IRT, p-IRT and gp-IRT (Maia Polo et al., ICML 2024).

Re-implemented from the paper and the MIT-licensed `felipemaiapolo/tinyBenchmarks` package, which is
not on PyPI and downloads its parameter file at run time. The parameter file `tinyBenchmarks.pkl`
holds, per bundle (`lb` for the Open LLM Leaderboard scenarios, `mmlu`, ...):

* ``seen_examples``: global item positions of the 100 anchor items of each scenario, concatenated in
  the order of ``scenarios_position``'s keys;
* ``examples_weights``: ``{scenario: array(100)}``, the anchor weights (they sum to 1);
* ``irt_parameters``: ``{"A": array(1, D, N), "B": array(1, D, N)}``, a D-dimensional IRT model over
  all N items of the full benchmarks;
* ``optimal_lambdas``: ``{scenario: float}``, the gp-IRT mixing weight;
* ``scenarios_position``: ``{scenario: [positions]}``; ``subscenarios_position``:
  ``{scenario: {subscenario: [positions]}}``.

Given a model's 100 scores y (0/1, or soft scores such as TruthfulQA's mc2) in dataset row order:
IRT fits the model's ability theta on the anchors and reports the anchor-weighted score; p-IRT mixes
the observed mean with the IRT prediction on the unseen items; gp-IRT mixes the two estimates.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize

ITEMS_PER_SCENARIO = 100
# Scenarios of the Open LLM Leaderboard bundle; MMLU has a bundle of its own.
LEADERBOARD_SCENARIOS = ("truthfulqa", "gsm8k", "winogrande", "arc", "hellaswag")
LOG_EPS = 1e-10


class IRTParametersUnavailable(FileNotFoundError):
    """The tinyBenchmarks parameter file is missing; the message says how to provide it."""


@dataclass(frozen=True)
class Estimates:
    irt: float
    pirt: float
    gpirt: float


def load_parameters(path: str | Path | None) -> dict[str, Any]:
    """The tinyBenchmarks parameter bundles from `tinyBenchmarks.pkl`."""
    if path is None or not Path(path).is_file():
        raise IRTParametersUnavailable(
            f"tinyBenchmarks parameter file not found ({path!r}). gp-IRT estimates need it: download "
            "https://raw.githubusercontent.com/felipemaiapolo/tinyBenchmarks/main/tinyBenchmarks/"
            "tinyBenchmarks.pkl where the network is reachable and set "
            "evaluate.retention.tinybench.irt_parameters to its path (or null for raw accuracy only)."
        )
    with open(path, "rb") as handle:
        # The file is a plain pickle of dicts and numpy arrays, from a source the user chose to trust.
        return pickle.load(handle)


def item_curve(theta: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """P(correct) of items with discriminations A (D, n) and difficulties B (D, n) at ability theta (D,)."""
    z = np.clip(A * theta[:, None] - B, -30.0, 30.0).sum(axis=0)
    return 1.0 / (1.0 + np.exp(-z))


def fit_ability(y: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The maximum-likelihood ability theta (D,) for scores y (n,) on items (A, B of shape (D, n)).

    Soft scores in [0, 1] enter as soft labels of the Bernoulli likelihood. BFGS from theta = 0, as in
    the original estimator.
    """
    y = np.asarray(y, dtype=float)

    def negative_log_likelihood(theta: np.ndarray) -> float:
        p = item_curve(theta, A, B)
        return -float(np.sum(y * np.log(p + LOG_EPS) + (1.0 - y) * np.log(1.0 - p + LOG_EPS)))

    return minimize(negative_log_likelihood, np.zeros(A.shape[0]), method="BFGS").x


def balance_weights(bundle: Mapping[str, Any], n_items: int) -> np.ndarray:
    """Per-item weights that make every subscenario (an MMLU subject) count equally in its scenario."""
    weights = np.ones(n_items)
    for scenario, positions in bundle["scenarios_position"].items():
        subscenarios = bundle["subscenarios_position"][scenario]
        for sub_positions in subscenarios.values():
            sub_positions = np.asarray(sub_positions, dtype=int)
            if len(sub_positions):
                weights[sub_positions] = len(positions) / (len(subscenarios) * len(sub_positions))
    return weights


def bundle_for(benchmark: str) -> str:
    if benchmark in LEADERBOARD_SCENARIOS:
        return "lb"
    return benchmark


def estimate(y: Sequence[float], benchmark: str, parameters: Mapping[str, Any]) -> Estimates:
    """IRT, p-IRT and gp-IRT estimates of the full-benchmark score from the 100 tiny-benchmark scores."""
    y = np.asarray(y, dtype=float)
    if y.shape != (ITEMS_PER_SCENARIO,):
        raise ValueError(f"{benchmark}: gp-IRT needs {ITEMS_PER_SCENARIO} scores in dataset order, got {y.shape}")
    bundle = parameters[bundle_for(benchmark)]
    scenario_names = list(bundle["scenarios_position"])
    if benchmark not in scenario_names:
        raise KeyError(f"{benchmark!r} is not a scenario of bundle {bundle_for(benchmark)!r}: {scenario_names}")
    A = np.asarray(bundle["irt_parameters"]["A"])[0]
    B = np.asarray(bundle["irt_parameters"]["B"])[0]
    n_items = A.shape[1]
    all_seen = np.asarray(bundle["seen_examples"], dtype=int)
    offset = ITEMS_PER_SCENARIO * scenario_names.index(benchmark)
    seen = all_seen[offset : offset + ITEMS_PER_SCENARIO]

    theta = fit_ability(y, A[:, seen], B[:, seen])
    weights = balance_weights(bundle, n_items)
    positions = np.asarray(bundle["scenarios_position"][benchmark], dtype=int)
    unseen = np.setdiff1d(positions, all_seen)            # sorted, like the original's index order

    irt = float(np.dot(np.asarray(bundle["examples_weights"][benchmark], dtype=float), y))
    observed = float(np.mean(weights[seen] * y))
    predicted = float(np.mean(weights[unseen] * item_curve(theta, A[:, unseen], B[:, unseen])))
    lam = ITEMS_PER_SCENARIO / len(positions)
    pirt = lam * observed + (1.0 - lam) * predicted
    optimal = float(bundle["optimal_lambdas"][benchmark])
    gpirt = optimal * irt + (1.0 - optimal) * pirt
    return Estimates(irt=irt, pirt=pirt, gpirt=gpirt)
