"""Discretized output spaces: the finite set of canonical strings a model is trained to emit.

The construction is the paper's (reference: structured-sampling.md section 4), reproduced value for
value so that the same seed draws the same atom as the paper's code:

* discrete families keep consecutive integers, printed with ``str(int)``;
* continuous families keep a grid of multiples of ``10**-decimals`` between two quantiles,
  subsampled to ``max_bins`` centers, each center owning the probability of its Voronoi cell,
  printed with ``f"{x:.{decimals}f}"``.

Everything is vectorized: one ``ppf`` call and one ``cdf`` call per continuous prompt.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np


@dataclass
class OutputSpace:
    """A finite target distribution over canonical strings.

    ``values[i]`` is printed exactly as a model should write it; ``probs[i]`` is its mass.
    ``decimals`` is the number of printed decimals (0 for integer families, whose strings ignore the
    configured value). ``lower``/``upper`` are the family's true support bounds (None = infinite), not
    the quantile window that was discretized.
    """

    values: list[str]
    probs: np.ndarray
    integer_only: bool
    decimals: int
    lower: float | None
    upper: float | None


def build_output_space(
    dist: Any,
    support: tuple[float | None, float | None],
    integer_only: bool,
    target: TargetSettings,
) -> OutputSpace:
    """Discretize a frozen scipy distribution the way the paper does, under the settings `target`.

    ``support`` is the family's true support ``(lower, upper)`` with None for an infinite side.
    """
    lower, upper = support
    window = (target.quantile_low, target.quantile_high)
    if integer_only:
        values, probs = _integer_atoms(dist, lower, upper, target.max_bins, *window)
        printed_decimals = 0
    else:
        values, probs = _continuous_atoms(dist, lower, upper, target.decimals, target.max_bins, *window)
        printed_decimals = target.decimals
    return OutputSpace(
        values=values,
        probs=probs,
        integer_only=integer_only,
        decimals=printed_decimals,
        lower=None if lower is None else float(lower),
        upper=None if upper is None else float(upper),
    )


# The most printed decimals of a continuous target (the config schema's targets.<name>.decimals and
# `cft target --decimals`): 10**-8 steps keep the grid indices of the paper's windows exact in float64.
MAX_DECIMALS = 8
# The most atoms a target may keep (targets.<name>.max_bins, `cft target --max-bins`).
MAX_BINS = 1_000_000


@dataclass(frozen=True)
class TargetSettings:
    """How a prompt's target is discretized: the printed decimals of a continuous target, the most
    atoms it keeps, and the quantile window it covers. One named entry of the config's `targets`
    section (`cft.config.target_settings`); training methods, datasets, the fidelity trie and the
    baselines each name the entry they use.

    The defaults are the paper's soft target (d=5, 1001 atoms over [ppf(0.001), ppf(0.999)]), equal
    to the schema's `targets.soft` (tests/test_config.py checks that they agree).
    """

    decimals: int = 5
    max_bins: int = 1001
    quantile_low: float = 0.001
    quantile_high: float = 0.999

    def __post_init__(self) -> None:
        for key, low, high in (("decimals", 0, MAX_DECIMALS), ("max_bins", 2, MAX_BINS)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"target key {key!r}: {value!r} is not an integer from {low} to {high}")
        if not 0 < self.quantile_low < 0.5 < self.quantile_high < 1:
            raise ValueError(f"target keys 'quantile_low' ({self.quantile_low!r}) and 'quantile_high' "
                             f"({self.quantile_high!r}) must satisfy 0 < quantile_low < 0.5 < quantile_high < 1")

    @classmethod
    def of(cls, value: TargetSettings | Mapping[str, Any]) -> TargetSettings:
        """The settings themselves, or built from a mapping of their keys (an unknown key is an error)."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"target settings must be a mapping of {', '.join(cls.setting_names())}, not {value!r}")
        unknown = sorted(set(value) - set(cls.setting_names()))
        if unknown:
            raise ValueError(f"unknown target key {', '.join(map(repr, unknown))}; "
                             f"allowed: {', '.join(cls.setting_names())}")
        return cls(**value)

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def space(self, spec: Any) -> OutputSpace:
        """The output space of one ``cft.prompts.PromptSpec``."""
        family, params = spec.family, spec.param_dict
        return build_output_space(family.distribution(params), family.support(params), family.integer_only, self)

    def trie(self, spec: Any, tokenizer: Any, eos_id: int | None = None):
        """The token trie (`cft.trie.TokenTrie`) of one prompt's output space under ``tokenizer``."""
        from cft.trie import TokenTrie  # cft.trie builds on this module

        return TokenTrie.from_output_space(self.space(spec), tokenizer, eos_id=eos_id)

    def check_window(self, spec: Any) -> tuple[float, float]:
        """`check_window` of one prompt under these settings."""
        family, params = spec.family, spec.param_dict
        return check_window(family.distribution(params), family.support(params), family.integer_only,
                            **self.to_dict())


# The paper's two targets: soft (and the fidelity trie) on 1001 atoms, hard sampled from 16384. The
# training methods' defaults (cft.training), equal to the schema's targets.soft and targets.hard.
SOFT_TARGET = TargetSettings()
HARD_TARGET = TargetSettings(max_bins=16384)


@dataclass(frozen=True, kw_only=True)
class TargetSection:
    """A settings class that trains or scores against one target, given as `TargetSettings` or a
    mapping of its keys (as the workflow's rules pass it): the fidelity evaluation and the baselines."""

    target: TargetSettings = SOFT_TARGET

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", TargetSettings.of(self.target))


def _integer_atoms(dist, lower, upper, max_bins, quantile_low, quantile_high):
    first, last = integer_window(dist, (lower, upper), max_bins, quantile_low, quantile_high)
    # The paper keeps the first max_bins values; only those are built (the window can hold 10**12).
    support_values = np.arange(first, min(last, first + max_bins - 1) + 1, dtype=np.int64)
    probs = np.asarray(dist.pmf(support_values), dtype=np.float64)
    # The upper tail beyond the cut is folded into the last value. The paper never folds the lower
    # tail (only Skellam has one); renormalization spreads that missing mass over all values.
    if upper is None:
        probs[-1] += max(0.0, 1.0 - float(dist.cdf(float(support_values[-1]))))
    probs = _normalize(probs)
    return [str(v) for v in support_values.tolist()], probs


def integer_window(dist, support, max_bins: int, quantile_low: float, quantile_high: float) -> tuple[int, int]:
    """The integer range [first, last] a discrete target covers (before the paper's max_bins cut).

    An infinite side is cut at a quantile; a finite side keeps the whole support, however small
    the mass of its extreme values. The fallbacks for an undefined quantile are the paper's
    (its lower one is (-max_bins) // 2, so -501 rather than -500 for 1001 bins).
    """
    lower, upper = support
    if lower is None:
        start = float(dist.ppf(quantile_low))
        first = math.floor(start) if np.isfinite(start) else (-max_bins) // 2
    else:
        first = math.floor(lower)
    if upper is None:
        end = float(dist.ppf(quantile_high))
        last = math.ceil(end) if np.isfinite(end) else max_bins // 2
    else:
        last = math.ceil(upper)
    if first > last:
        first, last = last, first
    return first, last


def continuous_window(dist, support, quantile_low: float, quantile_high: float) -> tuple[float, float]:
    """The range a continuous target is discretized over: [ppf(q_low), ppf(q_high)] clipped into the
    true support (bounded families are quantile-trimmed too), or [-10, 10] when that is empty or
    not finite."""
    low, high = quantile_window(dist, support, quantile_low, quantile_high)
    if not np.isfinite(low) or not np.isfinite(high) or low >= high:
        low, high = -10.0, 10.0
    return low, high


def quantile_window(dist, support, quantile_low: float, quantile_high: float) -> tuple[float, float]:
    """[ppf(q_low), ppf(q_high)] clipped into the true support; possibly empty or not finite."""
    lower, upper = support
    low, high = (float(x) for x in dist.ppf([quantile_low, quantile_high]))
    if lower is not None:
        low = max(low, float(lower))
    if upper is not None:
        high = min(high, float(upper))
    return low, high


# Grid indices k of the multiples k * 10**-decimals must stay exact in float64 (and fit int64).
MAX_GRID_POINTS = 2**53
# How far from 0 an integer target may reach: as far as its most atoms.
MAX_INTEGER_REACH = MAX_BINS


def check_window(dist, support, integer_only: bool, *, decimals: int, max_bins: int,
                 quantile_low: float, quantile_high: float) -> tuple[float, float]:
    """The window a target would be built over, or one ValueError line saying why it cannot be.

    No prompt of the paper's grids is refused (tests/test_targets.py); a hand-written prompt
    (`cft target`) can ask for a window that the paper's construction would silently replace by its
    fallback [-10, 10] (a quantile that is not finite, or a window that float64 collapses to a point),
    one that holds more integers than `max_bins` keeps (the paper keeps the first `max_bins` values,
    misplacing the rest of the mass), or one whose grid indices float64 cannot represent exactly.
    """
    lower, upper = support
    if integer_only:
        # Checked before any quantile: scipy finds some discrete quantiles by stepping from 0 (Skellam's
        # 10 at a time, so one at -10**9 takes hours) or never returns (a negative binomial with
        # p=1e-300). A target holds at most MAX_INTEGER_REACH integers, so none needs to reach further.
        reach = abs(float(dist.mean())) + 10 * float(dist.std())
        if not math.isfinite(reach) or reach > MAX_INTEGER_REACH:
            raise ValueError(f"the distribution's mean + 10 standard deviations reaches {reach:.3g}, beyond "
                             f"{MAX_INTEGER_REACH:,} (scipy's search for its quantiles could take hours)")
        raw = [float(dist.ppf(quantile_low)) if lower is None else float(lower),
               float(dist.ppf(quantile_high)) if upper is None else float(upper)]
        if not all(np.isfinite(raw)):
            raise ValueError(f"the quantile window [{raw[0]:g}, {raw[1]:g}] is not finite")
        first, last = integer_window(dist, support, max_bins, quantile_low, quantile_high)
        count = last - first + 1
        if count > max_bins:
            raise ValueError(f"the target spans {count} integers [{first}, {last}], more than max_bins={max_bins}; "
                             "the paper's construction keeps only the first max_bins of them and would misplace "
                             "the rest of the mass (raise max_bins)")
        return float(first), float(last)
    low, high = quantile_window(dist, support, quantile_low, quantile_high)
    if not np.isfinite(low) or not np.isfinite(high) or low >= high:
        raise ValueError(f"the quantile window [{low:g}, {high:g}] is not a finite interval (parameters beyond "
                         "float64 precision?); the paper's construction would silently use [-10, 10]")
    # The grid is indexed by k (center = k * 10**-decimals) from 0, so the window's farthest edge counts.
    steps = max(abs(low), abs(high)) * 10.0**decimals
    if steps > MAX_GRID_POINTS:
        raise ValueError(f"the window [{low:g}, {high:g}] reaches {steps:.3g} steps of 10**-{decimals} from 0, more "
                         f"than 2**53, beyond which float64 cannot index the grid exactly")
    return low, high


def _continuous_atoms(dist, lower, upper, decimals, max_bins, quantile_low, quantile_high):
    window_low, window_high = continuous_window(dist, (lower, upper), quantile_low, quantile_high)

    centers = _grid_centers(window_low, window_high, decimals, max_bins)
    # Voronoi cells: each center owns the interval between the midpoints to its neighbours; the
    # outermost cells end at the window edges.
    boundaries = np.concatenate(([window_low], (centers[:-1] + centers[1:]) / 2.0, [window_high]))
    cdf = np.asarray(dist.cdf(boundaries), dtype=np.float64)
    probs = np.diff(cdf)
    # Both tails outside the window are added to the edge atoms ("clip_to_edge_bin").
    probs[0] += max(0.0, float(cdf[0]))
    probs[-1] += max(0.0, 1.0 - float(cdf[-1]))
    probs = _normalize(probs)

    values = [f"{x:.{decimals}f}" for x in centers.tolist()]
    return _merge_adjacent_duplicates(values, probs)


def _grid_centers(window_low: float, window_high: float, decimals: int, max_bins: int) -> np.ndarray:
    """Multiples of 10**-decimals inside the window, subsampled to at most max_bins (both ends kept).

    The multiples are enumerated as integers k and only then scaled, so no step accumulates error.
    """
    step = 10.0**-decimals
    k_first = math.ceil(window_low / step)
    k_last = math.floor(window_high / step)
    if k_first > k_last:
        # The window holds no grid point: a single atom at its rounded midpoint.
        return np.array([round((window_low + window_high) / 2.0, decimals)])
    count = k_last - k_first + 1
    if count > max_bins:
        # Pick the subsample's offsets directly: the full grid can hold billions of points.
        offsets = np.linspace(0, count - 1, num=max_bins).astype(np.int64)
    else:
        offsets = np.arange(count, dtype=np.int64)
    return (k_first + offsets).astype(np.float64) * step


def _merge_adjacent_duplicates(values: list[str], probs: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Sum the masses of neighbouring atoms that print identically, then renormalize.

    Distinct integer multiples never collide, so this only guards the contract that strings are
    unique; the final renormalization is kept because the paper applies it unconditionally.
    """
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = [a != b for a, b in zip(values[:-1], values[1:])]
    if not keep.all():
        starts = np.flatnonzero(keep)
        probs = np.add.reduceat(probs, starts)
        values = [values[i] for i in starts.tolist()]
    return values, _normalize(probs)


def _normalize(probs: np.ndarray) -> np.ndarray:
    clipped = np.clip(probs, 0.0, None)
    total = float(clipped.sum())
    if not np.isfinite(total) or total <= 0.0:
        raise ValueError(f"target masses are not a distribution (total mass {total})")
    return clipped / total


def sample_index(probs: np.ndarray, seed: int) -> int:
    """The paper's draw of one atom: the same seed picks the same atom as its code."""
    return int(np.random.default_rng(int(seed)).choice(len(probs), p=probs))


def sample_indices(probs: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
    """``[sample_index(probs, s) for s in seeds]``, sharing one cumulative sum.

    ``Generator.choice(n, p=p)`` draws one uniform from the generator and inverts the normalized
    cumulative sum of ``p`` with ``searchsorted(side="right")``; doing that here gives identical
    indices without validating and summing ``p`` once per seed.
    """
    cdf = np.cumsum(np.asarray(probs, dtype=np.float64))
    cdf /= cdf[-1]
    uniforms = np.array([np.random.default_rng(int(seed)).random() for seed in seeds])
    return np.searchsorted(cdf, uniforms, side="right").astype(np.int64)
