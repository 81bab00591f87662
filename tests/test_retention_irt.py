"""gp-IRT estimator of tinyBenchmarks on a synthetic parameter file of the real file's structure."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from cft.retention import irt


def synthetic_bundle(rng, scenarios: dict[str, int], dims: int, subscenarios: int = 1) -> dict:
    """A bundle like those in tinyBenchmarks.pkl: scenarios laid out one after another, 100 anchors each."""
    positions, seen, weights, subs, lambdas = {}, [], {}, {}, {}
    start = 0
    for name, size in scenarios.items():
        items = list(range(start, start + size))
        positions[name] = items
        anchors = sorted(rng.choice(items, size=irt.ITEMS_PER_SCENARIO, replace=False).tolist())
        seen.extend(anchors)
        w = rng.uniform(0.5, 1.5, irt.ITEMS_PER_SCENARIO)
        weights[name] = w / w.sum()
        subs[name] = {f"{name}_{k}": chunk.tolist() for k, chunk in enumerate(np.array_split(items, subscenarios))}
        lambdas[name] = 0.3
        start += size
    n = start
    return {
        "seen_examples": seen,
        "examples_weights": weights,
        "irt_parameters": {"A": rng.uniform(0.5, 2.0, (1, dims, n)), "B": rng.normal(0.0, 1.0, (1, dims, n))},
        "optimal_lambdas": lambdas,
        "scenarios_position": positions,
        "subscenarios_position": subs,
    }


@pytest.fixture(scope="module")
def parameters():
    rng = np.random.default_rng(0)
    return {
        "lb": synthetic_bundle(rng, {s: 600 for s in irt.LEADERBOARD_SCENARIOS}, dims=2),
        "mmlu": synthetic_bundle(rng, {"mmlu": 1400}, dims=2, subscenarios=7),
    }


def test_ability_fit_recovers_a_known_ability():
    rng = np.random.default_rng(1)
    A = rng.uniform(0.5, 2.0, (1, 4000))
    B = rng.normal(0.0, 1.5, (1, 4000))
    for true_theta in (-1.0, 0.0, 1.5):
        p = irt.item_curve(np.array([true_theta]), A, B)
        y = (rng.uniform(size=p.shape) < p).astype(float)
        assert irt.fit_ability(y, A, B)[0] == pytest.approx(true_theta, abs=0.12)


def test_soft_scores_fit_like_their_expectation():
    rng = np.random.default_rng(2)
    A, B = rng.uniform(0.5, 2.0, (1, 300)), rng.normal(0.0, 1.0, (1, 300))
    p = irt.item_curve(np.array([0.7]), A, B)
    # The expected scores themselves maximize the soft-label likelihood at the true ability.
    assert irt.fit_ability(p, A, B)[0] == pytest.approx(0.7, abs=1e-3)


@pytest.mark.parametrize("benchmark", ["mmlu", "truthfulqa", "hellaswag"])
def test_gpirt_lies_between_irt_and_pirt(parameters, benchmark):
    rng = np.random.default_rng(3)
    y = (rng.uniform(size=100) < 0.4).astype(float)
    est = irt.estimate(y, benchmark, parameters)
    low, high = sorted((est.irt, est.pirt))
    assert low <= est.gpirt <= high
    assert est.gpirt == pytest.approx(0.3 * est.irt + 0.7 * est.pirt)
    assert 0.0 < est.irt < 1.0 and 0.0 < est.pirt < 1.0


def test_estimates_follow_the_scores(parameters):
    ones = irt.estimate(np.ones(100), "mmlu", parameters)
    zeros = irt.estimate(np.zeros(100), "mmlu", parameters)
    assert ones.irt == pytest.approx(1.0)           # anchor weights sum to one
    assert zeros.irt == pytest.approx(0.0)
    assert ones.pirt > 0.8 > 0.2 > zeros.pirt


def test_leaderboard_scenarios_use_their_own_anchors(parameters):
    """IRT for scenario k is the weighted sum of y, and p-IRT only mixes items of that scenario."""
    bundle = parameters["lb"]
    y = np.zeros(100)
    y[:10] = 1.0
    est = irt.estimate(y, "winogrande", parameters)
    assert est.irt == pytest.approx(float(bundle["examples_weights"]["winogrande"][:10].sum()))
    # The observed part of p-IRT uses balance weights of one (a single subscenario) on its 100 anchors.
    lam = 100 / 600
    assert est.pirt >= lam * 0.1 - 1e-12


def test_parameter_file_round_trip_and_missing_file(parameters, tmp_path):
    path = tmp_path / "tinyBenchmarks.pkl"
    path.write_bytes(pickle.dumps(parameters))
    loaded = irt.load_parameters(path)
    y = np.r_[np.ones(50), np.zeros(50)]
    assert irt.estimate(y, "gsm8k", loaded) == irt.estimate(y, "gsm8k", parameters)
    with pytest.raises(irt.IRTParametersUnavailable, match="irt_parameters"):
        irt.load_parameters(tmp_path / "absent.pkl")


def test_estimate_needs_all_100_scores(parameters):
    with pytest.raises(ValueError, match="100 scores"):
        irt.estimate(np.ones(50), "mmlu", parameters)
