"""The registry of distribution families that prompts ask a model to sample from.

A family knows three things about its parameters:

* how the grid parameters used by the parameter grids become the *materialized* parameters that the
  prompt shows (``materialize``),
* which materialized values are allowed (``domains``: one :class:`Param` per parameter), and
* how materialized parameters become a frozen ``scipy.stats`` distribution and its true support.

The domains are declarative so that validation (``check_parameters``) and random generation of valid
parameters (the hypothesis strategy in ``tests/strategies.py``) read the same description. A domain
bound may name another parameter (``b`` of a uniform must exceed ``a``); such bounds are resolved in
dependency order, which :attr:`Family.domains_in_dependency_order` exposes.

Adding a family is one :func:`register_family` call (plus one grids entry in :mod:`cft.grids` when it
should appear in the splits).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import scipy.stats

TIERS = ("I", "II", "III")
KINDS = ("continuous", "discrete")

Bound = float | str  # a number, or the name of another parameter of the same family
Support = tuple[float | None, float | None]


class UnknownFamily(ValueError):
    """A family id that is not in the registry."""

    def __init__(self, family_id: str):
        self.family_id = family_id
        super().__init__(f"unknown family {family_id!r}; known families: {', '.join(FAMILIES)}")


class InvalidParameters(ValueError):
    """Parameters that the family (and scipy) does not accept; the message is one line."""

    def __init__(self, family_id: str, key: str, reason: str):
        self.family_id = family_id
        self.key = key
        super().__init__(f"{family_id}: parameter {key!r} {reason}")


@dataclass(frozen=True)
class Param:
    """The allowed values of one materialized parameter.

    ``lower``/``upper`` are numbers or the name of another parameter; ``*_open`` makes a bound strict.
    ``typical`` is a range inside the domain where scipy's numerics are well behaved: random
    generation draws from it (intersected with any bound that names another parameter).
    """

    name: str
    lower: Bound = -math.inf
    upper: Bound = math.inf
    lower_open: bool = False
    upper_open: bool = False
    integer: bool = False
    typical: tuple[float, float] = (-20.0, 20.0)

    def __post_init__(self) -> None:
        low, high = self.typical
        if not low <= high:
            raise ValueError(f"parameter {self.name!r}: typical range {self.typical} is empty")
        if not (self._admits_numeric(low) and self._admits_numeric(high)):
            raise ValueError(f"parameter {self.name!r}: typical range {self.typical} leaves its domain")

    @property
    def references(self) -> tuple[str, ...]:
        """Names of the other parameters that bound this one."""
        return tuple(bound for bound in (self.lower, self.upper) if isinstance(bound, str))

    def describe(self, values: Mapping[str, float] | None = None) -> str:
        """The domain in words, e.g. 'an integer in [0, M (= 30.0)]' or 'a number > 0'.

        With ``values``, bounds that name another parameter also show that parameter's value.
        """
        noun = "an integer" if self.integer else "a number"

        def show(bound: Bound) -> str:
            if isinstance(bound, str):
                return f"{bound} (= {values[bound]!r})" if values and bound in values else bound
            return f"{bound:g}"

        has_lower = isinstance(self.lower, str) or math.isfinite(self.lower)
        has_upper = isinstance(self.upper, str) or math.isfinite(self.upper)
        if has_lower and has_upper:
            left = "(" if self.lower_open else "["
            right = ")" if self.upper_open else "]"
            return f"{noun} in {left}{show(self.lower)}, {show(self.upper)}{right}"
        if has_lower:
            return f"{noun} {'>' if self.lower_open else '>='} {show(self.lower)}"
        if has_upper:
            return f"{noun} {'<' if self.upper_open else '<='} {show(self.upper)}"
        return "a finite number"

    def admits(self, value: float, values: Mapping[str, float]) -> bool:
        """Whether ``value`` lies in the domain, bounds naming other parameters read from ``values``."""
        if self.integer and not value.is_integer():
            return False
        lower = values[self.lower] if isinstance(self.lower, str) else self.lower
        upper = values[self.upper] if isinstance(self.upper, str) else self.upper
        return _within(value, lower, upper, self.lower_open, self.upper_open)

    def _admits_numeric(self, value: float) -> bool:
        # Only the numeric bounds: a bound naming another parameter has no value yet.
        lower = -math.inf if isinstance(self.lower, str) else self.lower
        upper = math.inf if isinstance(self.upper, str) else self.upper
        return _within(value, lower, upper, self.lower_open, self.upper_open)


def _within(value: float, lower: float, upper: float, lower_open: bool, upper_open: bool) -> bool:
    above = value > lower if lower_open else value >= lower
    below = value < upper if upper_open else value <= upper
    return above and below


# Shorthands for the domains that recur across the table below.
def real(name: str, typical: tuple[float, float] = (-20.0, 20.0)) -> Param:
    return Param(name, typical=typical)


def positive(name: str, typical: tuple[float, float] = (0.1, 20.0)) -> Param:
    return Param(name, lower=0.0, lower_open=True, typical=typical)


def probability(name: str, *, zero_allowed: bool = True) -> Param:
    # Near 0 and 1 the distributions degenerate; random generation stays away from there.
    return Param(name, lower=0.0, upper=1.0, lower_open=not zero_allowed, typical=(0.05, 0.95))


def count(name: str, *, lower: Bound = 0.0, upper: Bound = math.inf,
          typical: tuple[float, float] = (0.0, 60.0)) -> Param:
    return Param(name, lower=lower, upper=upper, integer=True, typical=typical)


def _as_number(family_id: str, key: str, value: object) -> float:
    """``value`` as a finite float, or InvalidParameters naming the key."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameters(family_id, key, f"must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidParameters(family_id, key, f"must be finite, got {number!r}")
    return number


def _check_keys(family_id: str, given: Mapping[str, object], expected: tuple[str, ...], what: str) -> None:
    for key in given:
        if key not in expected:
            raise InvalidParameters(
                family_id, key, f"is not a {what} of this family; expected {', '.join(expected)}"
            )
    for key in expected:
        if key not in given:
            raise InvalidParameters(family_id, key, f"is missing; expected {', '.join(expected)}")


@dataclass(frozen=True)
class Family:
    """One distribution family: names, parameter domains, grid transform and scipy mapping."""

    family_id: str
    display_name: str  # goes into the prompt verbatim
    tier: str  # "I" | "II" | "III": a difficulty label, metadata only
    kind: str  # "continuous" | "discrete"
    domains: tuple[Param, ...]  # one per materialized parameter, in prompt order
    scipy_name: str  # attribute of scipy.stats
    to_scipy: Callable[[Mapping[str, float]], dict]  # materialized parameters -> constructor kwargs
    support_of: Callable[[Mapping[str, float]], Support]  # true support, None for an infinite side
    # Names used by the grids, and the transform from them to materialized parameters.
    # Leaving them out means the grids use the materialized parameters directly.
    grid_parameter_names: tuple[str, ...] | None = None
    transform: Callable[[Mapping[str, float]], dict[str, float]] | None = None
    parameter_names: tuple[str, ...] = field(init=False)
    domains_in_dependency_order: tuple[Param, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"family {self.family_id!r}: tier must be one of {TIERS}, got {self.tier!r}")
        if self.kind not in KINDS:
            raise ValueError(f"family {self.family_id!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if not hasattr(scipy.stats, self.scipy_name):
            raise ValueError(f"family {self.family_id!r}: scipy.stats has no {self.scipy_name!r}")
        names = tuple(param.name for param in self.domains)
        if len(set(names)) != len(names):
            raise ValueError(f"family {self.family_id!r}: duplicate parameter names {names}")
        if (self.grid_parameter_names is None) != (self.transform is None):
            raise ValueError(f"family {self.family_id!r}: grid_parameter_names and transform go together")
        object.__setattr__(self, "parameter_names", names)
        if self.grid_parameter_names is None:
            object.__setattr__(self, "grid_parameter_names", names)
        object.__setattr__(self, "domains_in_dependency_order", self._dependency_order())

    def _dependency_order(self) -> tuple[Param, ...]:
        ordered: list[Param] = []
        pending = list(self.domains)
        while pending:
            ready = [p for p in pending if all(ref in {q.name for q in ordered} for ref in p.references)]
            if not ready:
                unresolved = ", ".join(p.name for p in pending)
                raise ValueError(
                    f"family {self.family_id!r}: bounds of {unresolved} name unknown or cyclic parameters"
                )
            ordered.extend(ready)
            pending = [p for p in pending if p not in ready]
        return tuple(ordered)

    @property
    def integer_only(self) -> bool:
        return self.kind == "discrete"

    def check_parameters(self, params: Mapping[str, float]) -> None:
        """Raise InvalidParameters (one line: key and domain) unless scipy accepts ``params``."""
        _check_keys(self.family_id, params, self.parameter_names, "parameter")
        checked: dict[str, float] = {}
        for param in self.domains_in_dependency_order:
            value = _as_number(self.family_id, param.name, params[param.name])
            if not param.admits(value, checked):
                raise InvalidParameters(
                    self.family_id, param.name, f"must be {param.describe(checked)}, got {value!r}"
                )
            checked[param.name] = value

    def materialize(self, grid_params: Mapping[str, float]) -> dict[str, float]:
        """Grid parameters -> checked materialized parameters (floats, prompt order)."""
        _check_keys(self.family_id, grid_params, self.grid_parameter_names, "grid parameter")
        values = {key: _as_number(self.family_id, key, grid_params[key]) for key in self.grid_parameter_names}
        transformed = values if self.transform is None else self.transform(values)
        materialized = {name: float(transformed[name]) for name in self.parameter_names}
        self.check_parameters(materialized)
        return materialized

    def scipy_kwargs(self, params: Mapping[str, float]) -> dict:
        self.check_parameters(params)
        return self.to_scipy(params)

    def distribution(self, params: Mapping[str, float]):
        """The frozen scipy.stats distribution for checked ``params``."""
        return getattr(scipy.stats, self.scipy_name)(**self.scipy_kwargs(params))

    def support(self, params: Mapping[str, float]) -> Support:
        """True support (lo, hi) for checked ``params``; None marks an infinite side."""
        self.check_parameters(params)
        return self.support_of(params)


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add ``family`` to FAMILIES; an id can be registered only once."""
    if family.family_id in FAMILIES:
        raise ValueError(f"family {family.family_id!r} is already registered")
    FAMILIES[family.family_id] = family
    return family


def get_family(family_id: str) -> Family:
    try:
        return FAMILIES[family_id]
    except KeyError:
        raise UnknownFamily(family_id) from None


# Grid -> materialized transforms. Rounding is Python's round (half to even), kept as float.
def _uniform_from_width(grid: Mapping[str, float]) -> dict[str, float]:
    return {"a": grid["a"], "b": grid["a"] + grid["width"]}


def _triangular_from_width(grid: Mapping[str, float]) -> dict[str, float]:
    a, width = grid["a"], grid["width"]
    return {"a": a, "c": a + width * grid["mode_fraction"], "b": a + width}


def _rounding(*names: str) -> Callable[[Mapping[str, float]], dict[str, float]]:
    def transform(grid: Mapping[str, float]) -> dict[str, float]:
        return {key: float(round(value)) if key in names else value for key, value in grid.items()}

    return transform


def _hypergeometric_from_fraction(grid: Mapping[str, float]) -> dict[str, float]:
    # The draws N and the successes K are capped by the population M, so every grid point is valid.
    population = round(grid["M"])
    draws = min(round(grid["N"]), population)
    successes = min(population, max(0, round(population * grid["success_fraction"])))
    return {"M": float(population), "K": float(successes), "N": float(draws)}


_UNBOUNDED: Support = (None, None)
_NONNEGATIVE: Support = (0.0, None)

# The paper's 30 families, in the paper's table order.
for _family in (
    Family("uniform", "Uniform", "I", "continuous",
           (real("a", (-20.0, 10.0)), Param("b", lower="a", lower_open=True, typical=(-10.0, 20.0))),
           "uniform", lambda p: {"loc": p["a"], "scale": p["b"] - p["a"]},
           lambda p: (p["a"], p["b"]),
           grid_parameter_names=("a", "width"), transform=_uniform_from_width),
    Family("gaussian", "Gaussian", "I", "continuous", (real("mu"), positive("sigma")),
           "norm", lambda p: {"loc": p["mu"], "scale": p["sigma"]}, lambda p: _UNBOUNDED),
    Family("bernoulli", "Bernoulli", "I", "discrete", (probability("p"),),
           "bernoulli", lambda p: {"p": p["p"]}, lambda p: (0.0, 1.0)),
    Family("beta", "Beta", "II", "continuous", (positive("alpha"), positive("beta")),
           "beta", lambda p: {"a": p["alpha"], "b": p["beta"]}, lambda p: (0.0, 1.0)),
    Family("binomial", "Binomial", "II", "discrete", (count("n"), probability("p")),
           "binom", lambda p: {"n": int(p["n"]), "p": p["p"]}, lambda p: (0.0, p["n"]),
           grid_parameter_names=("n", "p"), transform=_rounding("n")),
    Family("poisson", "Poisson", "II", "discrete",
           (Param("lambda", lower=0.0, typical=(0.1, 50.0)),),
           "poisson", lambda p: {"mu": p["lambda"]}, lambda p: _NONNEGATIVE),
    # lambda is a rate.
    Family("exponential", "Exponential", "II", "continuous", (positive("lambda"),),
           "expon", lambda p: {"scale": 1.0 / p["lambda"]}, lambda p: _NONNEGATIVE),
    # Counts trials up to the first success, so the support starts at 1; scipy needs p in (0, 1].
    Family("geometric", "Geometric", "II", "discrete", (probability("p", zero_allowed=False),),
           "geom", lambda p: {"p": p["p"]}, lambda p: (1.0, None)),
    # Counts failures before the r-th success; scipy needs r > 0 and p in (0, 1].
    Family("negative_binomial", "Negative Binomial", "II", "discrete",
           (count("r", lower=1.0, typical=(1.0, 30.0)), probability("p", zero_allowed=False)),
           "nbinom", lambda p: {"n": int(p["r"]), "p": p["p"]}, lambda p: _NONNEGATIVE,
           grid_parameter_names=("r", "p"), transform=_rounding("r")),
    Family("lognormal", "LogNormal", "II", "continuous",
           (real("mu", (-5.0, 5.0)), positive("sigma", (0.1, 3.0))),
           "lognorm", lambda p: {"s": p["sigma"], "scale": math.exp(p["mu"])}, lambda p: _NONNEGATIVE),
    Family("triangular", "Triangular", "II", "continuous",
           (real("a", (-20.0, 10.0)),
            Param("c", lower="a", upper="b"),
            Param("b", lower="a", lower_open=True, typical=(-10.0, 20.0))),
           "triang",
           lambda p: {"c": (p["c"] - p["a"]) / (p["b"] - p["a"]), "loc": p["a"], "scale": p["b"] - p["a"]},
           lambda p: (p["a"], p["b"]),
           grid_parameter_names=("a", "width", "mode_fraction"), transform=_triangular_from_width),
    Family("rayleigh", "Rayleigh", "II", "continuous", (positive("sigma"),),
           "rayleigh", lambda p: {"scale": p["sigma"]}, lambda p: _NONNEGATIVE),
    Family("maxwell", "Maxwell", "II", "continuous", (positive("scale"),),
           "maxwell", lambda p: {"scale": p["scale"]}, lambda p: _NONNEGATIVE),
    Family("truncnorm", "TruncNorm", "II", "continuous",
           (real("mu", (-5.0, 5.0)), positive("sigma", (0.5, 5.0)), real("lower", (-10.0, 5.0)),
            Param("upper", lower="lower", lower_open=True, typical=(-5.0, 10.0))),
           "truncnorm",
           lambda p: {"a": (p["lower"] - p["mu"]) / p["sigma"], "b": (p["upper"] - p["mu"]) / p["sigma"],
                      "loc": p["mu"], "scale": p["sigma"]},
           lambda p: (p["lower"], p["upper"])),
    Family("cauchy", "Cauchy", "III", "continuous", (real("x0"), positive("gamma")),
           "cauchy", lambda p: {"loc": p["x0"], "scale": p["gamma"]}, lambda p: _UNBOUNDED),
    Family("student_t", "Student's t", "III", "continuous", (positive("nu", (1.0, 60.0)),),
           "t", lambda p: {"df": p["nu"]}, lambda p: _UNBOUNDED),
    Family("chi_square", "Chi-Square", "III", "continuous", (positive("nu", (1.0, 60.0)),),
           "chi2", lambda p: {"df": p["nu"]}, lambda p: _NONNEGATIVE),
    Family("f_distribution", "F-Distribution", "III", "continuous",
           (positive("d1", (1.0, 60.0)), positive("d2", (1.0, 60.0))),
           "f", lambda p: {"dfn": p["d1"], "dfd": p["d2"]}, lambda p: _NONNEGATIVE),
    # beta is a scale, not a rate.
    Family("gamma", "Gamma", "III", "continuous", (positive("alpha"), positive("beta")),
           "gamma", lambda p: {"a": p["alpha"], "scale": p["beta"]}, lambda p: _NONNEGATIVE),
    Family("weibull", "Weibull", "III", "continuous", (positive("k", (0.5, 10.0)), positive("lambda")),
           "weibull_min", lambda p: {"c": p["k"], "scale": p["lambda"]}, lambda p: _NONNEGATIVE),
    Family("laplace", "Laplace", "III", "continuous", (real("mu"), positive("b")),
           "laplace", lambda p: {"loc": p["mu"], "scale": p["b"]}, lambda p: _UNBOUNDED),
    Family("logistic", "Logistic", "III", "continuous", (real("mu"), positive("s")),
           "logistic", lambda p: {"loc": p["mu"], "scale": p["s"]}, lambda p: _UNBOUNDED),
    Family("pareto", "Pareto", "III", "continuous", (positive("alpha", (1.5, 10.0)), positive("xm")),
           "pareto", lambda p: {"b": p["alpha"], "scale": p["xm"]}, lambda p: (p["xm"], None)),
    # K successes among a population of M, N draws; scipy calls them M, n, N and needs M >= 1.
    Family("hypergeometric", "Hypergeometric", "III", "discrete",
           (count("M", lower=1.0, typical=(1.0, 120.0)),
            count("K", upper="M", typical=(0.0, 120.0)),
            count("N", upper="M", typical=(0.0, 120.0))),
           "hypergeom", lambda p: {"M": int(p["M"]), "n": int(p["K"]), "N": int(p["N"])},
           lambda p: (max(0.0, p["N"] - (p["M"] - p["K"])), min(p["N"], p["K"])),
           grid_parameter_names=("M", "N", "success_fraction"), transform=_hypergeometric_from_fraction),
    Family("gumbel", "Gumbel", "III", "continuous", (real("mu"), positive("beta")),
           "gumbel_r", lambda p: {"loc": p["mu"], "scale": p["beta"]}, lambda p: _UNBOUNDED),
    Family("skellam", "Skellam", "III", "discrete",
           (positive("mu1", (0.1, 30.0)), positive("mu2", (0.1, 30.0))),
           "skellam", lambda p: {"mu1": p["mu1"], "mu2": p["mu2"]}, lambda p: _UNBOUNDED),
    Family("beta_binomial", "Beta-Binomial", "III", "discrete",
           (count("n"), positive("alpha"), positive("beta")),
           "betabinom", lambda p: {"n": int(p["n"]), "a": p["alpha"], "b": p["beta"]},
           lambda p: (0.0, p["n"]),
           grid_parameter_names=("n", "alpha", "beta"), transform=_rounding("n")),
    Family("lomax", "Lomax", "III", "continuous", (positive("alpha", (1.5, 10.0)), positive("lambda")),
           "lomax", lambda p: {"c": p["alpha"], "scale": p["lambda"]}, lambda p: _NONNEGATIVE),
    # scipy's invgauss(mu', scale) has mean mu' * scale, so mu' = mu / lambda gives mean mu.
    Family("inverse_gaussian", "Inverse Gaussian", "III", "continuous", (positive("mu"), positive("lambda")),
           "invgauss", lambda p: {"mu": p["mu"] / p["lambda"], "scale": p["lambda"]}, lambda p: _NONNEGATIVE),
    Family("chi", "Chi", "III", "continuous", (positive("df", (1.0, 60.0)),),
           "chi", lambda p: {"df": p["df"]}, lambda p: _NONNEGATIVE),
):
    register_family(_family)
del _family
