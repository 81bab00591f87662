"""Paired comparisons of two variants with significance: is one variant's fidelity better than another's?

For one model, split and metric, two variants are compared family by family. Each family's value is
the mean over its prompts, as in the summary (`cft.evaluation.aggregate`), taken over the prompts
where both variants have a finite value, so that the two family values stand on the same prompts.
The comparison then has

* ``median_diff``: the median over families of (a - b), and ``median_ratio``: the median over families
  of a / b (missing when some family's b is not positive);
* their 95% paired bootstrap intervals: each replicate resamples the families with replacement and,
  within every drawn family, its prompts, as the summary's bootstrap does; a and b are resampled with
  the same draws, so the interval is that of a paired difference;
* a two-sided Wilcoxon signed-rank test over the paired family values (``scipy.stats.wilcoxon`` with
  its defaults: zero differences dropped, the exact null distribution for small samples). When every
  difference is zero the test has nothing to rank; the comparison then reports statistic 0 and
  p = 1 without calling scipy (whose answer to that case is a warning and a version-dependent
  value);
* ``n_a_better`` / ``n_b_better``: the families where a / b is strictly better, in the metric's
  direction (lower KL and W1, higher valid and numeric mass).

The p-values are not adjusted for the number of comparisons.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from cft.io import write_csv

# The headline exact metrics and whether lower or higher is better.
COMPARISON_METRICS: dict[str, str] = {
    "digit_kl": "lower",
    "exact_w1_norm": "lower",
    "exact_trie_kl": "lower",
    "exact_valid_mass": "higher",
    "first_token_numeric_mass": "higher",
}

# The paper's two methods; every other trained method is a new objective compared against soft.
PAPER_METHODS = ("soft", "hard")

COMPARISON_COLUMNS = [
    "model", "split", "metric", "better", "variant_a", "variant_b", "n_families", "n_prompts",
    "median_a", "median_b", "median_diff", "median_diff_ci_low", "median_diff_ci_high",
    "median_ratio", "median_ratio_ci_low", "median_ratio_ci_high", "wilcoxon_stat", "p_value",
    "n_a_better", "n_b_better",
]


def comparison_pairs(variants: Sequence[str], methods: Sequence[str]) -> list[tuple[str, str]]:
    """The pairs (a, b) to compare: every variant against base, soft against hard, and each new
    objective (a trained method other than soft and hard) against soft."""
    pairs = [(variant, "base") for variant in variants if variant != "base"] if "base" in variants else []
    if "soft" in variants and "hard" in variants:
        pairs.append(("soft", "hard"))
    if "soft" in variants:
        pairs += [(method, "soft") for method in methods
                  if method in variants and method not in PAPER_METHODS]
    return pairs


def paired_family_values(prompts: pd.DataFrame, metric: str, variant_a: str,
                         variant_b: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per family (sorted by id): its id and the a and b values of the prompts where both are finite.

    ``prompts`` holds one model and split. A family without such a prompt is left out (it cannot be
    paired); the caller counts the families that remain.
    """
    keys = ["family_id", "distribution_id"]
    a = prompts.loc[prompts["variant"] == variant_a, [*keys, metric]]
    b = prompts.loc[prompts["variant"] == variant_b, [*keys, metric]]
    for name, frame in ((variant_a, a), (variant_b, b)):
        if frame.duplicated(keys).any():
            raise ValueError(f"variant {name} has more than one row for a prompt of fidelity_prompts.csv")
    paired = a.merge(b, on=keys, suffixes=("_a", "_b"))
    value_a = pd.to_numeric(paired[f"{metric}_a"], errors="coerce").to_numpy(dtype=np.float64)
    value_b = pd.to_numeric(paired[f"{metric}_b"], errors="coerce").to_numpy(dtype=np.float64)
    both = np.isfinite(value_a) & np.isfinite(value_b)
    families = []
    for family_id in sorted(paired.loc[both, "family_id"].unique()):
        rows = both & (paired["family_id"] == family_id).to_numpy()
        families.append((family_id, value_a[rows], value_b[rows]))
    return families


def wilcoxon_two_sided(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The two-sided Wilcoxon signed-rank statistic and p-value of paired values; (0, 1) when every
    difference is zero, (NaN, NaN) without any pair."""
    if len(a) == 0:
        return float("nan"), float("nan")
    if np.all(a - b == 0):
        return 0.0, 1.0
    result = stats.wilcoxon(a, b, alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


def _ratios(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """a / b elementwise, or None when some b is not positive (a ratio of signed values means nothing)."""
    return a / b if np.all(b > 0) else None


def paired_bootstrap(families: Sequence[tuple[str, np.ndarray, np.ndarray]], n_boot: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Replicates of the median over families of (a - b) and of a / b (None when a ratio is undefined):
    families resampled with replacement, and prompts within every family, the same draws for a and b."""
    means_a, means_b = [], []
    for _, a, b in families:
        drawn = rng.integers(0, len(a), size=(n_boot, len(a)))
        means_a.append(a[drawn].mean(axis=1))
        means_b.append(b[drawn].mean(axis=1))
    means_a, means_b = np.column_stack(means_a), np.column_stack(means_b)
    drawn_families = rng.integers(0, len(families), size=means_a.shape)
    resampled_a = np.take_along_axis(means_a, drawn_families, axis=1)
    resampled_b = np.take_along_axis(means_b, drawn_families, axis=1)
    diffs = np.median(resampled_a - resampled_b, axis=1)
    ratios = _ratios(resampled_a, resampled_b)
    return diffs, None if ratios is None else np.median(ratios, axis=1)


def compare_pair(prompts: pd.DataFrame, metric: str, variant_a: str, variant_b: str, *,
                 n_boot: int, seed: int, stream: Sequence[str] = (), confidence: float = 0.95) -> dict:
    """One comparison row (see the module docstring) of one model and split's prompts. The bootstrap
    draws from a seed derived from ``stream`` (model and split), the metric and the pair, so adding a
    variant or a model does not change the intervals of the others."""
    families = paired_family_values(prompts, metric, variant_a, variant_b)
    better = COMPARISON_METRICS[metric]
    row = {"metric": metric, "better": better, "variant_a": variant_a, "variant_b": variant_b,
           "n_families": len(families), "n_prompts": sum(len(a) for _, a, _ in families)}
    if not families:
        return row
    a = np.array([values.mean() for _, values, _ in families])
    b = np.array([values.mean() for _, _, values in families])
    sign = 1.0 if better == "lower" else -1.0
    statistic, p_value = wilcoxon_two_sided(a, b)
    ratios = _ratios(a, b)
    name = "\x1f".join(map(str, (*stream, metric, variant_a, variant_b)))
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    boot_diffs, boot_ratios = paired_bootstrap(families, n_boot, rng)
    tail = (1 - confidence) / 2
    row.update(
        median_a=float(np.median(a)),
        median_b=float(np.median(b)),
        median_diff=float(np.median(a - b)),
        median_diff_ci_low=float(np.quantile(boot_diffs, tail)),
        median_diff_ci_high=float(np.quantile(boot_diffs, 1 - tail)),
        wilcoxon_stat=statistic,
        p_value=p_value,
        n_a_better=int(np.sum(sign * (b - a) > 0)),
        n_b_better=int(np.sum(sign * (a - b) > 0)),
    )
    if ratios is not None and boot_ratios is not None:
        row.update(
            median_ratio=float(np.median(ratios)),
            median_ratio_ci_low=float(np.quantile(boot_ratios, tail)),
            median_ratio_ci_high=float(np.quantile(boot_ratios, 1 - tail)),
        )
    return row


def compare_variants(prompts: pd.DataFrame, pairs: Iterable[tuple[str, str]], *,
                     metrics: Sequence[str] = tuple(COMPARISON_METRICS), n_boot: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """One row per model, split (or prompt group, which the caller names `split`), metric and pair
    of variants present in ``prompts``. A pair whose variants have no paired value gets
    ``n_families = 0`` and empty statistics (SSoT has no exact metrics), so no requested comparison
    disappears silently."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    missing = [c for c in ("model", "split", "variant", "family_id", "distribution_id", *metrics)
               if c not in prompts.columns]
    if missing:
        raise ValueError(f"fidelity prompts table lacks the column(s) {', '.join(missing)}")
    pairs = list(pairs)
    rows = []
    for (model, split), frame in prompts.groupby(["model", "split"], sort=True):
        present = set(frame["variant"])
        for variant_a, variant_b in pairs:
            if variant_a not in present or variant_b not in present:
                continue
            for metric in metrics:
                row = compare_pair(frame, metric, variant_a, variant_b, n_boot=n_boot, seed=seed,
                                   stream=(model, split))
                rows.append({"model": model, "split": split, **row})
    return pd.DataFrame(rows).reindex(columns=COMPARISON_COLUMNS)


def comparison_table(prompts_csv: str, out_csv: str, *, variants: Sequence[str], methods: Sequence[str],
                     n_boot: int, seed: int) -> pd.DataFrame:
    """The `tab_fidelity_comparisons` rule: every configured pair on every model and split."""
    table = compare_variants(pd.read_csv(prompts_csv), comparison_pairs(variants, methods),
                             n_boot=n_boot, seed=seed)
    write_csv(out_csv, table)
    return table


def compare_runs(prompts_a: pd.DataFrame, prompts_b: pd.DataFrame, *, variant_a: str, variant_b: str,
                 label_a: str, label_b: str, metrics: Sequence[str] = tuple(COMPARISON_METRICS),
                 n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The paired comparisons of one variant of run a against one of run b, for two runs of different
    configs (the default's soft adapter against one trained on more distinct prompts, say). Each run's
    variant is renamed to its label; the pairs are the prompts both runs scored, by family and
    distribution id, so the test splits pair fully and prompt groups drawn per run pair where they
    coincide."""
    if label_a == label_b:
        raise ValueError(f"the two runs need different labels, got {label_a!r} twice")
    parts = []
    for prompts, variant, label in ((prompts_a, variant_a, label_a), (prompts_b, variant_b, label_b)):
        rows = prompts[prompts["variant"] == variant]
        if rows.empty:
            raise ValueError(f"run {label!r} has no rows of variant {variant!r} "
                             f"(it has {', '.join(sorted(map(str, prompts['variant'].unique())))})")
        parts.append(rows.assign(variant=label))
    return compare_variants(pd.concat(parts, ignore_index=True), [(label_a, label_b)], metrics=metrics,
                            n_boot=n_boot, seed=seed)
