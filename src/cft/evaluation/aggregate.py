"""Aggregating per-prompt metrics: families first, then across families, with bootstrap intervals.

Within one (model, variant, split) group, each family's value is the mean over its prompts, and the
group's value is the median over families (the paper's headline) and, beside it, the mean. Every
family weighs the same whatever its number of prompts.

A missing value (None, NaN, or inf from an upstream table) never enters an average: it is skipped
and counted in ``n_missing``. The paper's averages went NaN or inf whenever one Cauchy prompt had an
undefined moment error or one prompt had no valid answer.

Confidence intervals are percentile bootstraps over prompts: each replicate resamples the prompts
of every family with replacement, recomputes the family means and then the median and mean across
families. Each (group, metric) draws from its own seed derived from its name, so adding a model to
the table does not change the intervals of the others.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

GROUP_COLUMNS = ("model", "variant", "split")
FAMILY_COLUMN = "family_id"


def _finite_values(column: pd.Series) -> np.ndarray:
    """The finite numbers of a metric column; None, NaN and inf are dropped."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    return values[np.isfinite(values)]


def family_means(
    df: pd.DataFrame,
    metrics: Sequence[str],
    *,
    group_cols: Sequence[str] = GROUP_COLUMNS,
    family_col: str = FAMILY_COLUMN,
) -> pd.DataFrame:
    """One row per group, family and metric: ``mean`` over the family's prompts (NaN when none
    has a value), ``n_prompts`` and ``n_missing`` (prompts whose value was missing)."""
    rows = []
    for key, family_df in df.groupby([*group_cols, family_col], sort=True, dropna=False):
        for metric in metrics:
            values = _finite_values(family_df[metric])
            rows.append({
                **dict(zip([*group_cols, family_col], key)),
                "metric": metric,
                "mean": float(values.mean()) if len(values) else np.nan,
                "n_prompts": len(family_df),
                "n_missing": len(family_df) - len(values),
            })
    return pd.DataFrame(rows, columns=[*group_cols, family_col, "metric", "mean", "n_prompts", "n_missing"])


def _bootstrap(
    families: list[np.ndarray], n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Replicates of (median, mean) across families of prompt-resampled family means."""
    replicate_means = np.column_stack([
        values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
        for values in families
    ])
    return np.median(replicate_means, axis=1), replicate_means.mean(axis=1)


def summarize(
    df: pd.DataFrame,
    metrics: Sequence[str],
    *,
    group_cols: Sequence[str] = GROUP_COLUMNS,
    family_col: str = FAMILY_COLUMN,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per group and metric: ``median`` and ``mean`` across family means, their bootstrap
    intervals (``median_ci_low`` ... ``mean_ci_high``), ``n_families`` with a value,
    ``n_families_missing`` without one, ``n_prompts`` and ``n_missing`` prompt values skipped.

    A group and metric without any value gets NaN statistics and ``n_families = 0``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    tail = (1 - confidence) / 2
    rows = []
    for key, group_df in df.groupby(list(group_cols), sort=True, dropna=False):
        for metric in metrics:
            by_family = group_df.groupby(family_col, sort=True, dropna=False)
            families = [_finite_values(f[metric]) for _, f in by_family]
            present = [values for values in families if len(values)]
            row = {
                **dict(zip(group_cols, key)),
                "metric": metric,
                "n_families": len(present),
                "n_families_missing": len(families) - len(present),
                "n_prompts": len(group_df),
                "n_missing": len(group_df) - sum(len(values) for values in present),
            }
            if present:
                point = np.array([values.mean() for values in present])
                name = "\x1f".join(map(str, (*key, metric)))
                rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
                medians, means = _bootstrap(present, n_boot, rng)
                row.update(
                    median=float(np.median(point)),
                    mean=float(point.mean()),
                    median_ci_low=float(np.quantile(medians, tail)),
                    median_ci_high=float(np.quantile(medians, 1 - tail)),
                    mean_ci_low=float(np.quantile(means, tail)),
                    mean_ci_high=float(np.quantile(means, 1 - tail)),
                )
            rows.append(row)
    columns = [*group_cols, "metric", "median", "mean", "median_ci_low", "median_ci_high",
               "mean_ci_low", "mean_ci_high", "n_families", "n_families_missing", "n_prompts",
               "n_missing"]
    return pd.DataFrame(rows).reindex(columns=columns)
