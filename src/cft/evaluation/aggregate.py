"""Aggregating per-prompt metrics: families first, then across families, with bootstrap intervals.

Within one (model, variant, split) group, each family's value is the mean over its prompts, and the
group's value is the median over families (the paper's headline) and, beside it, the mean. Every
family weighs the same whatever its number of prompts.

A missing value (None, NaN, or inf from an upstream table) never enters an average: it is skipped
and counted in ``n_missing``. The paper's averages went NaN or inf whenever one Cauchy prompt had an
undefined moment error or one prompt had no valid answer.

Confidence intervals are percentile bootstraps over families and prompts: each replicate resamples
the families with replacement and, within every drawn family, its prompts, recomputes the family means
and then the median and mean across the drawn families. Resampling the families matters: the paper's
unseen split has one prompt per family, where a bootstrap over prompts alone has zero width. For sampled metrics the caller may also pass per-prompt replicates drawn by resampling that
prompt's answers (``replicates``); replicate b then uses each drawn prompt's b-th value instead of its
point value, so the interval covers the noise of both the prompt set and the finite samples. Each (group, metric) draws from its own seed derived from its name, so adding a model to
the table does not change the intervals of the others.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

GROUP_COLUMNS = ("model", "variant", "split")
FAMILY_COLUMN = "family_id"


def _finite_values(column: pd.Series) -> np.ndarray:
    """The finite numbers of a metric column; None, NaN and inf are dropped."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    return values[np.isfinite(values)]


def _family_values(
    family_df: pd.DataFrame, metric: str, index: pd.Index, replicates: Mapping[str, np.ndarray] | None,
    n_boot: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """A family's finite point values and, if the metric has them, their sample-bootstrap replicates
    (rows without replicates repeat their point value)."""
    values = pd.to_numeric(family_df[metric], errors="coerce").to_numpy(dtype=np.float64)
    keep = np.isfinite(values)
    if not replicates or metric not in replicates:
        return values[keep], None
    rows = replicates[metric][index.get_indexer(family_df.index)][keep]
    if rows.shape[1] != n_boot:
        raise ValueError(f"replicates of {metric} have {rows.shape[1]} columns, expected n_boot={n_boot}")
    rows = np.where(np.isfinite(rows), rows, values[keep][:, None])
    return values[keep], rows


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
    families: list[tuple[np.ndarray, np.ndarray | None]], n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Replicates of (median, mean) across resampled families of prompt-resampled family means.

    Each family is (point values, per-prompt replicates of shape (prompts, n_boot) or None).
    """
    columns = []
    for values, replicates in families:
        drawn = rng.integers(0, len(values), size=(n_boot, len(values)))
        if replicates is None:
            columns.append(values[drawn].mean(axis=1))
        else:
            columns.append(replicates[drawn, np.arange(n_boot)[:, None]].mean(axis=1))
    replicate_means = np.column_stack(columns)
    drawn_families = rng.integers(0, len(families), size=replicate_means.shape)
    resampled = np.take_along_axis(replicate_means, drawn_families, axis=1)
    return np.median(resampled, axis=1), resampled.mean(axis=1)


def summarize(
    df: pd.DataFrame,
    metrics: Sequence[str],
    *,
    group_cols: Sequence[str] = GROUP_COLUMNS,
    family_col: str = FAMILY_COLUMN,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    replicates: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per group and metric: ``median`` and ``mean`` across family means, their bootstrap
    intervals (``median_ci_low`` ... ``mean_ci_high``), ``n_families`` with a value,
    ``n_families_missing`` without one, ``n_prompts`` and ``n_missing`` prompt values skipped.

    A group and metric without any value gets NaN statistics and ``n_families = 0``.
    ``replicates`` maps a metric to an array of shape (len(df), n_boot) of per-prompt sample-bootstrap
    values (NaN rows where a prompt has none: its point value is used in every replicate).
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
            families = [_family_values(f, metric, df.index, replicates, n_boot) for _, f in by_family]
            present = [(values, reps) for values, reps in families if len(values)]
            row = {
                **dict(zip(group_cols, key)),
                "metric": metric,
                "n_families": len(present),
                "n_families_missing": len(families) - len(present),
                "n_prompts": len(group_df),
                "n_missing": len(group_df) - sum(len(values) for values, _ in present),
            }
            if present:
                point = np.array([values.mean() for values, _ in present])
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
