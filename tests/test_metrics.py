"""Sample metrics against hand-computed values, and aggregation that never averages NaN or inf."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cft.evaluation.aggregate import family_means, summarize
from cft.evaluation.metrics import (
    mad_about_median,
    merge_sparse_cells,
    sample_metrics,
    target_summary,
    w1_between_pmfs,
    w1_to_target,
)
from cft.evaluation.parsing import ParsedSample
from cft.grids import PAPER_HELDOUT_FAMILIES, PAPER_TRAIN_FAMILIES, build_splits


def valid(values) -> list[ParsedSample]:
    return [ParsedSample(text=repr(float(v)), value=float(v), error=None) for v in values]


def assert_clean(record: dict) -> None:
    """No field of a metric record is ever NaN or inf."""
    for key, value in record.items():
        if isinstance(value, float):
            assert math.isfinite(value), key


# --- W1 ---------------------------------------------------------------------------------------

def test_w1_is_zero_on_the_target_mid_quantiles() -> None:
    assert w1_to_target([0.875, 0.125, 0.625, 0.375], stats.uniform()) == pytest.approx(0.0)


def test_w1_by_hand() -> None:
    # Quantiles of U(0, 1) at (i - 0.5)/4 are 0.125, 0.375, 0.625, 0.875.
    assert w1_to_target([0, 0, 0, 0], stats.uniform()) == pytest.approx(0.5)
    assert w1_to_target([1, 0, 0, 0], stats.uniform()) == pytest.approx((0.125 + 0.375 + 0.625 + 0.125) / 4)


def test_median_sampler_scores_one_on_uniform_exactly() -> None:
    # Ten answers at 0.5: |0.5 - (i - 0.5)/10| averages 0.25 = E|U - 1/2|.
    record = sample_metrics(valid([0.5] * 10), stats.uniform(), discrete=False)
    assert record["w1"] == pytest.approx(0.25)
    assert record["w1_normalized"] == pytest.approx(1.0)
    assert record["w1_over_std"] == pytest.approx(0.25 / math.sqrt(1 / 12))
    assert record["w1_normalizer"] == "mad_median"


@pytest.mark.parametrize(
    ("dist", "discrete", "n"),
    [
        (stats.norm(3.5, 3), False, 1000),
        (stats.expon(scale=1 / 7), False, 1000),
        # The mid-quantile grid misses the far tail: 0.956 at n = 1000, 0.997 at n = 100000.
        (stats.lognorm(s=2, scale=math.exp(2.5)), False, 100_000),
        (stats.poisson(4), True, 1000),
        (stats.binom(25, 0.3), True, 1000),
        (stats.bernoulli(0.3), True, 1000),
    ],
)
def test_median_sampler_scores_one(dist, discrete: bool, n: int) -> None:
    median = ParsedSample(text="m", value=float(dist.median()), error=None)
    record = sample_metrics([median] * n, dist, discrete=discrete)
    assert record["w1_normalized"] == pytest.approx(1.0, abs=0.01)


def test_perfect_sampler_scores_near_zero() -> None:
    dist = stats.norm(3.5, 3)
    record = sample_metrics(valid(dist.ppf((np.arange(1, 1001) - 0.5) / 1000)), dist, discrete=False)
    assert record["w1_normalized"] == pytest.approx(0.0, abs=1e-12)
    assert record["mean_error"] == pytest.approx(0.0, abs=1e-9)


# --- the normalizer ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("dist", "discrete", "expected"),
    [
        (stats.norm(3.5, 3), False, 3 * math.sqrt(2 / math.pi)),
        (stats.expon(scale=1 / 7), False, math.log(2) / 7),
        (stats.laplace(1, 2), False, 2.0),
        (stats.uniform(-5, 1.4), False, 1.4 / 4),
        # E|X - e^mu| = e^(mu + sigma^2/2) (2 Phi(sigma) - 1) for the lognormal.
        (stats.lognorm(s=2, scale=math.exp(2.5)), False, math.exp(4.5) * (2 * stats.norm.cdf(2) - 1)),
        (stats.bernoulli(0.3), True, 0.3),
        (stats.poisson(4), True, sum(abs(k - 4) * stats.poisson.pmf(k, 4) for k in range(200))),
    ],
)
def test_mad_about_median_closed_forms(dist, discrete: bool, expected: float) -> None:
    assert mad_about_median(dist, discrete=discrete) == pytest.approx(expected, rel=1e-7)


def test_cauchy_falls_back_to_half_iqr() -> None:
    target = target_summary(stats.cauchy(3.5, 3), discrete=False)
    assert mad_about_median(stats.cauchy(3.5, 3), discrete=False) == math.inf
    assert (target.normalizer_kind, target.mean, target.variance) == ("half_iqr", None, None)
    assert target.normalizer == pytest.approx(3.0)
    record = sample_metrics(valid(stats.cauchy(3.5, 3).rvs(200, random_state=1)), stats.cauchy(3.5, 3),
                            discrete=False)
    assert record["w1_normalizer"] == "half_iqr"
    assert record["mean_error"] is None and record["variance_error"] is None
    assert record["w1_over_std"] is None and record["w1_normalized"] is not None
    assert_clean(record)


def test_every_selected_test_prompt_has_a_positive_finite_normalizer() -> None:
    splits = build_splits(PAPER_TRAIN_FAMILIES, PAPER_HELDOUT_FAMILIES, "paper_selected")
    for spec in splits["unseen"] + splits["heldout"]:
        family = spec.family
        target = target_summary(family.distribution(spec.param_dict), discrete=family.integer_only)
        assert 0 < target.normalizer < math.inf, spec.distribution_id
        assert (target.normalizer_kind == "half_iqr") == (family.family_id == "cauchy")


# --- validity, missing values and goodness of fit ---------------------------------------------

def test_rates_use_all_requested_samples() -> None:
    parsed = valid(range(12)) + [
        ParsedSample("x", None, "malformed"),
        ParsedSample("", None, "empty"),
        ParsedSample("-1", -1.0, "below_support"),
        ParsedSample("2.5", 2.5, "non_integer"),
    ]
    record = sample_metrics(parsed, stats.poisson(4), discrete=True, num_requested=20)
    assert record["num_valid"] == 12
    assert record["valid_rate"] == pytest.approx(12 / 20)
    assert record["support_violation_rate"] == pytest.approx(2 / 20)
    assert (record["num_malformed"], record["num_empty"], record["num_below_support"]) == (1, 1, 1)


def test_too_few_valid_samples_leave_statistics_missing() -> None:
    parsed = valid([1.0] * 9) + [ParsedSample("?", None, "malformed")] * 91
    record = sample_metrics(parsed, stats.norm(), discrete=False)
    assert record["num_valid"] == 9 and record["valid_rate"] == pytest.approx(0.09)
    for key in ("w1", "w1_normalized", "w1_over_std", "mean_error", "variance_error", "gof_pvalue"):
        assert record[key] is None
    assert_clean(record)


def test_no_valid_sample_at_all() -> None:
    record = sample_metrics([ParsedSample("", None, "empty")] * 5, stats.norm(), discrete=False)
    assert record["valid_rate"] == 0.0 and record["w1"] is None
    assert_clean(record)


def test_overflowing_answers_give_missing_not_inf() -> None:
    record = sample_metrics(valid([1e308, -1e308] * 10), stats.norm(), discrete=False)
    assert record["sample_variance"] is None and record["variance_error"] is None
    assert_clean(record)


def test_ks_for_continuous_families() -> None:
    dist = stats.gamma(a=2.0, scale=1.5)
    good = sample_metrics(valid(dist.rvs(1000, random_state=3)), dist, discrete=False)
    bad = sample_metrics(valid(dist.rvs(1000, random_state=3) + 1.0), dist, discrete=False)
    assert good["gof_test"] == "ks" and good["gof_pvalue"] > 0.001 and bad["gof_pvalue"] < 1e-6


def test_chi_square_for_discrete_families() -> None:
    dist = stats.poisson(4)
    good = sample_metrics(valid(dist.rvs(1000, random_state=4)), dist, discrete=True)
    bad = sample_metrics(valid(stats.poisson(5).rvs(1000, random_state=4)), dist, discrete=True)
    assert good["gof_test"] == "chi2" and good["gof_pvalue"] > 0.001 and bad["gof_pvalue"] < 1e-6
    # Poisson(4) has 13 integers in [ppf(0.001), ppf(0.999)]; merging leaves fewer cells.
    assert 2 <= good["gof_dof"] + 1 < 15


def test_merge_sparse_cells() -> None:
    observed = np.array([0, 1, 3, 10, 20, 9, 1, 0])
    expected = np.array([0.5, 2.0, 4.0, 12.0, 18.0, 6.0, 1.0, 0.5])
    merged_obs, merged_exp = merge_sparse_cells(observed, expected)
    assert merged_exp.tolist() == [6.5, 12.0, 18.0, 7.5]
    assert merged_obs.tolist() == [4, 10, 20, 10]
    assert merged_exp.sum() == expected.sum() and merged_obs.sum() == observed.sum()


# --- W1 between two mass vectors --------------------------------------------------------------

def test_w1_between_pmfs_by_hand() -> None:
    assert w1_between_pmfs([0, 1, 2], [1, 0, 0], [0, 0, 1]) == pytest.approx(2.0)
    assert w1_between_pmfs([0, 1, 2], [0.5, 0.5, 0], [0, 0.5, 0.5]) == pytest.approx(1.0)
    assert w1_between_pmfs([0, 1, 3], [0.5, 0.5, 0], [0.5, 0.5, 0]) == 0.0


def test_w1_between_pmfs_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    x = np.sort(rng.normal(size=50))
    p, q = rng.dirichlet(np.ones(50)), rng.dirichlet(np.ones(50))
    assert w1_between_pmfs(x, p, q) == pytest.approx(stats.wasserstein_distance(x, x, p, q))


@pytest.mark.parametrize(
    ("x", "p", "q"),
    [([0, 0, 1], [0.5, 0.5, 0], [0, 0.5, 0.5]), ([0, 1], [0.5, 0.4], [0.5, 0.5]),
     ([0, 1], [1.5, -0.5], [0.5, 0.5]), ([0, 1], [0.5, math.nan], [0.5, 0.5])],
)
def test_w1_between_pmfs_rejects_bad_input(x, p, q) -> None:
    with pytest.raises(ValueError):
        w1_between_pmfs(x, p, q)


# --- aggregation ------------------------------------------------------------------------------

def metric_table() -> pd.DataFrame:
    rows = []
    for family, values in {
        "gaussian": [0.2, 0.4, None],
        "cauchy": [math.nan, math.inf, -math.inf],
        "poisson": [1.0, 3.0],
        "beta": [0.5, 0.7, 0.9, 0.1],
    }.items():
        for i, value in enumerate(values):
            rows.append({"model": "m", "variant": "base", "split": "unseen", "family_id": family,
                         "distribution_id": f"{family}_{i}", "w1_normalized": value})
    return pd.DataFrame(rows)


def test_family_means_skip_and_count_missing_values() -> None:
    means = family_means(metric_table(), ["w1_normalized"]).set_index("family_id")
    assert means.loc["gaussian", "mean"] == pytest.approx(0.3)
    assert means.loc["gaussian", "n_missing"] == 1
    assert math.isnan(means.loc["cauchy", "mean"]) and means.loc["cauchy", "n_missing"] == 3
    assert means.loc["poisson", "mean"] == pytest.approx(2.0)


def test_summary_never_averages_nan_or_inf() -> None:
    row = summarize(metric_table(), ["w1_normalized"], n_boot=200, seed=1).iloc[0]
    # Family means 0.3 (gaussian), 2.0 (poisson), 0.55 (beta); cauchy has no value.
    assert row["median"] == pytest.approx(0.55)
    assert row["mean"] == pytest.approx((0.3 + 2.0 + 0.55) / 3)
    assert (row["n_families"], row["n_families_missing"], row["n_prompts"], row["n_missing"]) == (3, 1, 12, 4)
    for key in ("median", "mean", "median_ci_low", "median_ci_high", "mean_ci_low", "mean_ci_high"):
        assert math.isfinite(row[key])


def test_bootstrap_interval_contains_the_estimate_and_is_reproducible() -> None:
    rng = np.random.default_rng(5)
    table = pd.DataFrame({
        "model": "m", "variant": "soft", "split": "heldout",
        "family_id": np.repeat([f"f{i}" for i in range(8)], 10),
        "w1": rng.gamma(2.0, size=80) * np.repeat(rng.uniform(0.5, 2, size=8), 10),
    })
    first = summarize(table, ["w1"], n_boot=500, seed=3).iloc[0]
    assert first["median_ci_low"] <= first["median"] <= first["median_ci_high"]
    assert first["mean_ci_low"] <= first["mean"] <= first["mean_ci_high"]
    assert first["mean_ci_low"] < first["mean_ci_high"]
    # Same seed, same interval, even with another group in the table.
    other = table.assign(model="other")
    both = summarize(pd.concat([table, other]), ["w1"], n_boot=500, seed=3)
    again = both[both["model"] == "m"].iloc[0]
    assert again["median_ci_low"] == first["median_ci_low"]
    assert again["mean_ci_high"] == first["mean_ci_high"]


def test_groups_are_kept_apart() -> None:
    table = pd.concat([metric_table(), metric_table().assign(split="heldout", w1_normalized=1.0)])
    summary = summarize(table, ["w1_normalized"], n_boot=50).set_index("split")
    assert summary.loc["heldout", "median"] == 1.0 and summary.loc["heldout", "n_missing"] == 0
    assert summary.loc["unseen", "median"] == pytest.approx(0.55)
