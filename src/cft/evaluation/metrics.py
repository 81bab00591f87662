"""Per-prompt metrics of sampled answers against the target law.

Definitions (the paper's where it has one, reference: structured-sampling.md sections 8.1 and 12):

* ``valid_rate``: valid answers / requested answers. ``support_violation_rate``: answers that parsed
  as numbers but lie outside the family's support (or are not integers where required) / requested.
* ``w1``: the paper's W1 = (1/n) sum_i |x_(i) - F^-1((i - 0.5)/n)| over the sorted valid answers,
  in the units of the variable.
* ``w1_normalized``: W1 divided by the target's mean absolute deviation about its median,
  E|X - median|. That is the W1 of a sampler that always answers the median, so such a sampler scores
  1, a perfect one 0 (up to the finite-n discretization of the quantile grid). Where E|X| is
  infinite (Cauchy), the normalizer is half the interquartile range instead (the Cauchy's own scale
  gamma); the record names the normalizer used (``w1_normalizer``). ``w1_over_std`` is W1 / sigma
  where sigma is finite.
* ``mean_error`` and ``variance_error``: |sample - target| for the mean and the variance (ddof 0),
  missing where the target moment is infinite or undefined.
* Goodness of fit: two-sided Kolmogorov-Smirnov for continuous families; for discrete families a
  chi-square test whose cells are merged left to right until each expects at least 5 answers.

With fewer than ``min_valid`` (10) valid answers, W1 and every statistic of the valid answers is
missing (None), never inf or NaN, and ``num_valid`` says why. No field is ever NaN or inf.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import integrate, stats

from cft.evaluation.parsing import ERROR_CODES, SUPPORT_ERRORS, ParsedSample

MIN_VALID = 10
# A chi-square cell is kept on its own only if it expects at least this many answers.
MIN_EXPECTED_PER_CELL = 5.0
# Discrete sums for E|X - median| run over this central quantile range; beyond it the neglected
# terms of the light-tailed discrete families are far below float precision of the result.
DISCRETE_TAIL = 1e-15
# A discrete law whose central range has more integers than this is treated like a heavy tail.
MAX_DISCRETE_TERMS = 10**7


@dataclass(frozen=True)
class TargetSummary:
    """Scale and moments of one target law. Moments are None when infinite or undefined."""

    mean: float | None
    variance: float | None
    median: float
    normalizer: float
    normalizer_kind: str  # "mad_median" or "half_iqr"

    @property
    def std(self) -> float | None:
        return math.sqrt(self.variance) if self.variance is not None else None


def _finite(x: Any) -> float | None:
    """``float(x)`` if it is finite, else None: the one gate through which every metric passes."""
    value = float(x)
    return value if math.isfinite(value) else None


def mad_about_median(dist: Any, *, discrete: bool) -> float:
    """E|X - median| of a scipy frozen law; inf when E|X| is infinite, or when a discrete law
    spans more than ``MAX_DISCRETE_TERMS`` integers (none of the registry's does).

    Continuous: E|X - m| = int_{-inf}^{m} F(x) dx + int_{m}^{inf} (1 - F(x)) dx, two quadratures
    that stay accurate for heavy but integrable tails (lognormal sigma=3, Student t with 1.2
    degrees of freedom). Discrete: the exact sum of |k - m| pmf(k) over the integers.
    """
    if _finite(dist.mean()) is None:
        return math.inf
    median = float(dist.median())
    if discrete:
        lo, hi = dist.ppf(DISCRETE_TAIL), dist.ppf(1.0 - DISCRETE_TAIL)
        if hi - lo > MAX_DISCRETE_TERMS:
            return math.inf
        ks = np.arange(lo, hi + 1.0)
        return float(np.sum(np.abs(ks - median) * dist.pmf(ks)))
    lower, upper = dist.support()
    # Far-tail evaluations such as Gumbel's exp(-exp(-x)) overflow to the right limit (0 or 1).
    with np.errstate(over="ignore", under="ignore"):
        below = integrate.quad(dist.cdf, lower, median, limit=200)[0]
        above = integrate.quad(dist.sf, median, upper, limit=200)[0]
    return below + above


def target_summary(dist: Any, *, discrete: bool) -> TargetSummary:
    """Moments, median and the W1 normalizer of one target law."""
    mad = mad_about_median(dist, discrete=discrete)
    if math.isfinite(mad):
        normalizer, kind = mad, "mad_median"
    else:
        normalizer, kind = float(dist.ppf(0.75) - dist.ppf(0.25)) / 2.0, "half_iqr"
    mean, variance = dist.stats(moments="mv")
    return TargetSummary(
        mean=_finite(mean),
        variance=_finite(variance),
        median=float(dist.median()),
        normalizer=normalizer,
        normalizer_kind=kind,
    )


def w1_to_target(values: Sequence[float], dist: Any) -> float:
    """The paper's W1 between the empirical law of ``values`` (non-empty) and ``dist``."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    quantiles = dist.ppf((np.arange(1, n + 1) - 0.5) / n)
    return float(np.mean(np.abs(x - quantiles)))


def bootstrap_w1(values: Sequence[float], dist: Any, *, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """W1 to ``dist`` of ``n_boot`` resamples (with replacement) of ``values``: the sampling noise of
    `w1_to_target` for this prompt. The number of answers stays that of ``values``, so the target's
    quantile grid is the one the point estimate used."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    quantiles = dist.ppf((np.arange(1, n + 1) - 0.5) / n)
    resampled = np.sort(x[rng.integers(0, n, size=(n_boot, n))], axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.mean(np.abs(resampled - quantiles), axis=1)


def w1_between_pmfs(support_values: Sequence[float], p: Sequence[float], q: Sequence[float]) -> float:
    """W1 between two laws on one strictly increasing grid: sum_j |P(x_j) - Q(x_j)| (x_{j+1} - x_j).

    Both mass vectors must be non-negative and sum to 1 (to 1e-6): a model's mass on the grid has to
    be renormalized by the caller, who knows what the missing mass means.
    """
    x = np.asarray(support_values, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if x.ndim != 1 or p.shape != x.shape or q.shape != x.shape or len(x) == 0:
        raise ValueError("support_values, p and q must be 1-D arrays of one non-zero length")
    if not np.all(np.isfinite(x)) or np.any(np.diff(x) <= 0):
        raise ValueError("support_values must be finite and strictly increasing")
    for name, mass in (("p", p), ("q", q)):
        if not np.all(np.isfinite(mass)) or np.any(mass < 0) or abs(mass.sum() - 1.0) > 1e-6:
            raise ValueError(f"{name} must be finite, non-negative and sum to 1")
    cdf_gap = np.abs(np.cumsum(p) - np.cumsum(q))[:-1]
    return float(np.sum(cdf_gap * np.diff(x)))


def merge_sparse_cells(
    observed: np.ndarray, expected: np.ndarray, min_expected: float = MIN_EXPECTED_PER_CELL
) -> tuple[np.ndarray, np.ndarray]:
    """Merge adjacent cells left to right until each expects at least ``min_expected``.

    A short remainder at the right end joins the last full cell. If the total expectation is below
    ``min_expected``, everything becomes one cell.
    """
    merged_obs: list[float] = []
    merged_exp: list[float] = []
    acc_obs = acc_exp = 0.0
    for o, e in zip(observed, expected):
        acc_obs += o
        acc_exp += e
        if acc_exp >= min_expected:
            merged_obs.append(acc_obs)
            merged_exp.append(acc_exp)
            acc_obs = acc_exp = 0.0
    if acc_exp > 0 or acc_obs > 0:
        if merged_exp:
            merged_obs[-1] += acc_obs
            merged_exp[-1] += acc_exp
        else:
            merged_obs.append(acc_obs)
            merged_exp.append(acc_exp)
    return np.array(merged_obs), np.array(merged_exp)


def chi_square_test(values: Sequence[float], dist: Any) -> tuple[float, float, int] | None:
    """Chi-square goodness of fit of integer ``values`` to a discrete law: (statistic, p, dof).

    Cells: one per integer between the target's 0.1% and 99.9% quantiles, plus one cell for each
    tail beyond them (answers out there are counted, not dropped), then sparse cells merged.
    None when fewer than two cells remain.
    """
    k = np.rint(np.asarray(values, dtype=np.float64))
    lo, hi = float(dist.ppf(0.001)), float(dist.ppf(0.999))
    grid = np.arange(lo, hi + 1.0)
    probs = np.concatenate([[dist.cdf(lo - 1.0)], dist.pmf(grid), [dist.sf(hi)]])
    observed = np.concatenate(
        [[np.sum(k < lo)], np.bincount((k[(k >= lo) & (k <= hi)] - lo).astype(np.int64),
                                       minlength=len(grid)), [np.sum(k > hi)]]
    ).astype(np.float64)
    expected = probs / probs.sum() * len(k)
    observed, expected = merge_sparse_cells(observed, expected)
    if len(expected) < 2:
        return None
    result = stats.chisquare(observed, expected)
    return float(result.statistic), float(result.pvalue), len(expected) - 1


def sample_metrics(
    parsed: Sequence[ParsedSample],
    dist: Any,
    *,
    discrete: bool,
    num_requested: int | None = None,
    min_valid: int = MIN_VALID,
    target: TargetSummary | None = None,
) -> dict[str, Any]:
    """The metric record of one prompt: a flat dict of ints, strings, finite floats and None.

    ``num_requested`` (default: ``len(parsed)``) is the denominator of the rates; a backend that
    returned fewer answers than were asked for is therefore charged for the missing ones.
    ``target`` may be passed to reuse a `target_summary` computed once per prompt.
    """
    num_requested = len(parsed) if num_requested is None else num_requested
    if num_requested < len(parsed) or num_requested < 1:
        raise ValueError(f"num_requested ({num_requested}) must be >= 1 and >= {len(parsed)} answers")
    target = target_summary(dist, discrete=discrete) if target is None else target
    valid = np.array([p.value for p in parsed if p.is_valid], dtype=np.float64)
    errors = [p.error for p in parsed]
    record: dict[str, Any] = {
        "num_requested": num_requested,
        "num_valid": len(valid),
        **{f"num_{code}": errors.count(code) for code in ERROR_CODES},
        "valid_rate": len(valid) / num_requested,
        "support_violation_rate": sum(e in SUPPORT_ERRORS for e in errors) / num_requested,
        "target_mean": target.mean,
        "target_variance": target.variance,
        "w1_normalizer": target.normalizer_kind,
        "w1_normalizer_value": _finite(target.normalizer),
        "gof_test": "chi2" if discrete else "ks",
    }
    # Statistics of the valid answers start missing and are filled in only from enough answers.
    record.update(dict.fromkeys(
        ("sample_mean", "sample_variance", "mean_error", "variance_error", "w1", "w1_normalized",
         "w1_over_std", "gof_statistic", "gof_pvalue", "gof_dof")
    ))
    if len(valid) < min_valid:
        return record

    # Huge but finite answers can overflow a sum; _finite turns that into a missing value.
    with np.errstate(over="ignore", invalid="ignore"):
        mean, variance = np.mean(valid), np.var(valid)
        w1 = _finite(w1_to_target(valid, dist))
    record["sample_mean"], record["sample_variance"] = _finite(mean), _finite(variance)
    if target.mean is not None and record["sample_mean"] is not None:
        record["mean_error"] = _finite(abs(record["sample_mean"] - target.mean))
    if target.variance is not None and record["sample_variance"] is not None:
        record["variance_error"] = _finite(abs(record["sample_variance"] - target.variance))
    record["w1"] = w1
    if w1 is not None and target.normalizer > 0 and math.isfinite(target.normalizer):
        record["w1_normalized"] = _finite(w1 / target.normalizer)
    if w1 is not None and target.std:
        record["w1_over_std"] = _finite(w1 / target.std)

    if discrete:
        test = chi_square_test(valid, dist)
        if test is not None:
            statistic, pvalue, dof = test
            record.update(gof_statistic=_finite(statistic), gof_pvalue=_finite(pvalue), gof_dof=dof)
    else:
        result = stats.kstest(valid, dist.cdf)
        record.update(gof_statistic=_finite(result.statistic), gof_pvalue=_finite(result.pvalue))
    return record
