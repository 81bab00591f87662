"""Exact-digit soft targets: the digit trie of a law built from its CDF at every depth (method `exactdigit`).

The paper's continuous target (`cft.targets`) keeps 1001 centers of the 10**-d grid and folds the
0.1% tails onto the two edge atoms. Below the first few digits that makes the trie lumpy: between
two centers 0.006 apart the fourth and fifth digits are fixed, so the model is taught that they are
deterministic, and the edge atoms carry an extra 0.1% each. Here every grid point is an atom, and the
mass of every trie node (a printed prefix such as "-1.2") is the law's mass of the values whose
printed form starts with that prefix: one CDF difference per run of atoms, no subsampling, no
enumeration of the (up to millions of) atoms. Only the nodes along one sampled answer are built.

Strings, sign and integer part. Atom k (an integer) prints as f"{k * 10**-d:.{d}f}" for a continuous
law (written with integer arithmetic, so "-0.00003", "12.50000") and as str(k) for an integer law.
The strings of one sign and one integer-part length L form a *class*: within it every string has
the same layout (sign, L digits, ".", d digits), so lexicographic order is numeric order of |k| and
the atoms below a prefix are one contiguous run of |k|. A prefix can match several classes ("1" is
the start of 1.xxxxx and of 10.xxxxx..19.xxxxx; for integers "1" is also a whole atom), so a node's
mass is a sum over classes of CDF differences. The two signs never share a node below the root: the
first character is "-" or a digit. Leading zeros cannot occur (class L >= 2 starts at 10**(L-1)).

Cells and truncation range. A continuous atom k stands for the values that round to it, the cell
[(k - 1/2) 10**-d, (k + 1/2) 10**-d). The atoms are the grid points inside the paper's window
[ppf(q_low), ppf(q_high)] clipped to the support (`cft.targets.continuous_window`); the two edge
cells end at the window's edges, and the law is *truncated* to the window (renormalized by its mass
there) instead of having its tails folded onto the edge atoms. An integer law keeps the paper's
integer range (`cft.targets.integer_window`), no `max_bins` cut, each integer its pmf, also
truncated rather than folded. A window that holds no grid point keeps the paper's single atom.

Tokens. The nodes are character prefixes, so the tokenizer must write "-", ".", and each digit as a
token of its own, and a number as the concatenation of those (SmolLM2, Qwen3 and Gemma 3 do; a
tokenizer that merges digit groups is refused with an error that says so).

Sampling. The answer is drawn by inverting one uniform (from `numpy.random.default_rng(seed)`, the
generator of the paper's draw) digit by digit: at each node the child whose cumulative mass interval
holds u is taken and u is rescaled into that interval, which is inversion of the CDF over the atoms
in trie order. Children of zero mass (none in the window's interior) are left out, so the walk
only visits nodes of positive mass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cft.styles import OKABE_ITO, Style
from cft.targets import SOFT_TARGET, TargetSettings, continuous_window, integer_window
from cft.training.config import TrainConfig
from cft.training.methods import register_method
from cft.training.trainer import SoftTargetTrainer

EOS = ""  # the child that ends the answer
SYMBOLS = ("-", *"0123456789", ".")


@dataclass(frozen=True)
class DigitLaw:
    """A law over the printed atoms k in [first, last] (see the module docstring).

    ``cdf`` is the law's CDF; ``decimals`` is 0 and ``integer`` True for an integer law, whose
    strings have no "."; ``window`` is the continuous truncation range (None for integers).
    """

    cdf: Any
    first: int
    last: int
    decimals: int
    integer: bool
    window: tuple[float, float] | None

    @classmethod
    def for_spec(cls, spec: Any, target: TargetSettings) -> DigitLaw:
        """The law of one prompt over the window and decimals of `target`."""
        decimals, quantile_low, quantile_high = target.decimals, target.quantile_low, target.quantile_high
        family = spec.family
        params = spec.param_dict
        dist = family.distribution(params)
        support = family.support(params)
        if family.integer_only:
            first, last = integer_window(dist, support, target.max_bins, quantile_low, quantile_high)
            return cls(dist.cdf, first, last, 0, True, None)
        low, high = continuous_window(dist, support, quantile_low, quantile_high)
        step = 10.0**-decimals
        first, last = math.ceil(low / step), math.floor(high / step)
        if first > last:
            first = last = round((low + high) / 2.0 / step)
        return cls(dist.cdf, first, last, decimals, False, (low, high))

    # ---- masses ---------------------------------------------------------------------------------

    def _edges(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The value interval (lower, upper] or [lower, upper) covered by atoms lo..hi (arrays)."""
        if self.integer:
            return lo - 1.0, hi.astype(np.float64)
        step = 10.0**-self.decimals
        window_low, window_high = self.window
        lower = np.where(lo <= self.first, window_low, (lo - 0.5) * step)
        upper = np.where(hi >= self.last, window_high, (hi + 0.5) * step)
        return lower, upper

    def run_masses(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Unnormalized mass of each run of atoms lo[j]..hi[j] (empty runs: lo > hi, mass 0)."""
        lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
        lower, upper = self._edges(lo, hi)
        values = np.asarray(self.cdf(np.concatenate((lower, upper))), dtype=np.float64)
        masses = values[len(lo):] - values[: len(lo)]
        return np.where(lo <= hi, np.clip(masses, 0.0, None), 0.0)

    # ---- strings --------------------------------------------------------------------------------

    def atom_string(self, k: int) -> str:
        sign = "-" if k < 0 else ""
        if self.decimals == 0:
            return sign + str(abs(k))
        whole, frac = divmod(abs(k), 10**self.decimals)
        return f"{sign}{whole}.{frac:0{self.decimals}d}"

    def _classes(self, negative: bool) -> list[tuple[int, int, int]]:
        """(L, lowest |k|, highest |k|) of the non-empty classes of one sign."""
        if negative:
            lo, hi = max(-self.last, 1), -self.first
        else:
            lo, hi = max(self.first, 0), self.last
        if lo > hi:
            return []
        scale = 10**self.decimals
        classes = []
        for length in range(len(str(lo // scale)), len(str(hi // scale)) + 1):
            whole_lo = 0 if length == 1 else 10 ** (length - 1)
            class_lo, class_hi = whole_lo * scale, 10**length * scale - 1
            if max(lo, class_lo) <= min(hi, class_hi):
                classes.append((length, max(lo, class_lo), min(hi, class_hi)))
        return classes

    def runs(self, prefix: str) -> tuple[list[tuple[int, int]], bool]:
        """The runs of atoms k (lo, hi) whose strings start with ``prefix``, and whether ``prefix``
        is itself a whole atom string."""
        negative = prefix.startswith("-")
        body = prefix[1:] if negative else prefix
        runs, complete = [], False
        signs = (False, True) if prefix == "" else (negative,)
        for sign in signs:
            for length, class_lo, class_hi in self._classes(sign):
                layout = "d" * length + ("." + "d" * self.decimals if self.decimals else "")
                if len(body) > len(layout) or any(
                    (c == ".") != (slot == ".") or (c != "." and not c.isdigit()) for c, slot in zip(body, layout)
                ):
                    continue
                digits = body.replace(".", "")
                free = length + self.decimals - len(digits)
                head = int(digits) if digits else 0
                lo, hi = max(class_lo, head * 10**free), min(class_hi, (head + 1) * 10**free - 1)
                if lo > hi:
                    continue
                runs.append((-hi, -lo) if sign else (lo, hi))
                complete = complete or len(body) == len(layout)
        return runs, complete

    def children(self, prefix: str) -> tuple[list[str], np.ndarray]:
        """The next characters after ``prefix`` that have positive mass (EOS = "" ends the answer)
        and their conditional probabilities, in the order "-", "0".."9", ".", EOS."""
        candidates, run_lists = [], []
        for symbol in SYMBOLS:
            runs, _ = self.runs(prefix + symbol)
            if runs:
                candidates.append(symbol)
                run_lists.append(runs)
        _, complete = self.runs(prefix)
        if complete:
            # A whole atom string is never a prefix of another atom of its class, so the eos child
            # is the atom itself: the single run of its class that has no free digits.
            k = self._atom_of(prefix)
            candidates.append(EOS)
            run_lists.append([(k, k)])
        flat = [run for runs in run_lists for run in runs]
        masses = self.run_masses(np.array([lo for lo, _ in flat]), np.array([hi for _, hi in flat]))
        owner = np.repeat(np.arange(len(run_lists)), [len(r) for r in run_lists])
        child_mass = np.bincount(owner, weights=masses, minlength=len(run_lists))
        keep = child_mass > 0
        if not keep.any():
            raise ValueError(f"the prefix {prefix!r} has no child of positive mass")
        kept = [c for c, k in zip(candidates, keep) if k]
        return kept, child_mass[keep] / child_mass[keep].sum()

    def _atom_of(self, string: str) -> int:
        negative = string.startswith("-")
        magnitude = int(string.lstrip("-").replace(".", ""))
        return -magnitude if negative else magnitude

    def sample(self, seed: int) -> tuple[str, list[tuple[list[str], np.ndarray]]]:
        """One answer string drawn by digit-wise inversion of one uniform, and the (children,
        probabilities) at each of its len + 1 nodes (the last one holds EOS)."""
        u = float(np.random.default_rng(int(seed)).random())
        prefix, steps = "", []
        while True:
            symbols, probs = self.children(prefix)
            steps.append((symbols, probs))
            cumulative = np.cumsum(probs)
            j = min(int(np.searchsorted(cumulative, u, side="right")), len(probs) - 1)
            below = cumulative[j - 1] if j > 0 else 0.0
            u = min(max((u - below) / probs[j], 0.0), np.nextafter(1.0, 0.0))
            if symbols[j] == EOS:
                return prefix, steps
            prefix += symbols[j]


def symbol_token_ids(tokenizer) -> dict[str, int]:
    """The single token of each of "-", ".", "0".."9"; an error if the tokenizer splits one."""
    ids = {}
    for symbol in SYMBOLS:
        encoded = tokenizer(symbol, add_special_tokens=False)["input_ids"]
        if len(encoded) != 1:
            raise ValueError(
                f"exact-digit targets need one token per character, but {type(tokenizer).__name__} "
                f"encodes {symbol!r} as {encoded}"
            )
        ids[symbol] = encoded[0]
    return ids


def exact_digit_path(spec: Any, tokenizer, eos_id: int, config: TrainConfig,
                     seed: int) -> tuple[tuple[int, ...], list[tuple[np.ndarray, np.ndarray]]]:
    """The `exactdigit` target builder: one answer and the exact digit-trie targets on its path."""
    law = DigitLaw.for_spec(spec, config.target)
    answer, steps = law.sample(seed)
    ids = symbol_token_ids(tokenizer)
    value_ids = tuple(ids[c] for c in answer)
    encoded = tuple(tokenizer(answer, add_special_tokens=False)["input_ids"])
    if encoded != value_ids:
        raise ValueError(
            f"exact-digit targets need numbers written one token per character, but "
            f"{type(tokenizer).__name__} encodes {answer!r} as {list(encoded)}"
        )
    token_steps = [
        (np.array([eos_id if s == EOS else ids[s] for s in symbols], dtype=np.int64), probs)
        for symbols, probs in steps
    ]
    return value_ids, token_steps


# The soft trainer with the exact digit trie on the soft target's settings; max_bins only serves the
# integer range's fallback when a quantile is undefined (as in the paper's construction).
register_method("exactdigit", SoftTargetTrainer, exact_digit_path,
                style=Style(OKABE_ITO["sky_blue"], "v", ":", ".."), epochs=3, target=SOFT_TARGET)
