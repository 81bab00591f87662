"""The family registry: the paper's table (§1.2), transforms, scipy mapping and parameter validation."""

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import valid_params

from cft.families import (
    FAMILIES,
    Family,
    InvalidParameters,
    Param,
    UnknownFamily,
    get_family,
    positive,
    real,
    register_family,
)

# family_id: (display_name, tier, kind, parameter_names in prompt order, scipy name)
PAPER_TABLE = {
    "uniform": ("Uniform", "I", "continuous", ("a", "b"), "uniform"),
    "gaussian": ("Gaussian", "I", "continuous", ("mu", "sigma"), "norm"),
    "bernoulli": ("Bernoulli", "I", "discrete", ("p",), "bernoulli"),
    "beta": ("Beta", "II", "continuous", ("alpha", "beta"), "beta"),
    "binomial": ("Binomial", "II", "discrete", ("n", "p"), "binom"),
    "poisson": ("Poisson", "II", "discrete", ("lambda",), "poisson"),
    "exponential": ("Exponential", "II", "continuous", ("lambda",), "expon"),
    "geometric": ("Geometric", "II", "discrete", ("p",), "geom"),
    "negative_binomial": ("Negative Binomial", "II", "discrete", ("r", "p"), "nbinom"),
    "lognormal": ("LogNormal", "II", "continuous", ("mu", "sigma"), "lognorm"),
    "triangular": ("Triangular", "II", "continuous", ("a", "c", "b"), "triang"),
    "rayleigh": ("Rayleigh", "II", "continuous", ("sigma",), "rayleigh"),
    "maxwell": ("Maxwell", "II", "continuous", ("scale",), "maxwell"),
    "truncnorm": ("TruncNorm", "II", "continuous", ("mu", "sigma", "lower", "upper"), "truncnorm"),
    "cauchy": ("Cauchy", "III", "continuous", ("x0", "gamma"), "cauchy"),
    "student_t": ("Student's t", "III", "continuous", ("nu",), "t"),
    "chi_square": ("Chi-Square", "III", "continuous", ("nu",), "chi2"),
    "f_distribution": ("F-Distribution", "III", "continuous", ("d1", "d2"), "f"),
    "gamma": ("Gamma", "III", "continuous", ("alpha", "beta"), "gamma"),
    "weibull": ("Weibull", "III", "continuous", ("k", "lambda"), "weibull_min"),
    "laplace": ("Laplace", "III", "continuous", ("mu", "b"), "laplace"),
    "logistic": ("Logistic", "III", "continuous", ("mu", "s"), "logistic"),
    "pareto": ("Pareto", "III", "continuous", ("alpha", "xm"), "pareto"),
    "hypergeometric": ("Hypergeometric", "III", "discrete", ("M", "K", "N"), "hypergeom"),
    "gumbel": ("Gumbel", "III", "continuous", ("mu", "beta"), "gumbel_r"),
    "skellam": ("Skellam", "III", "discrete", ("mu1", "mu2"), "skellam"),
    "beta_binomial": ("Beta-Binomial", "III", "discrete", ("n", "alpha", "beta"), "betabinom"),
    "lomax": ("Lomax", "III", "continuous", ("alpha", "lambda"), "lomax"),
    "inverse_gaussian": ("Inverse Gaussian", "III", "continuous", ("mu", "lambda"), "invgauss"),
    "chi": ("Chi", "III", "continuous", ("df",), "chi"),
}

# Families whose grids use other names than the prompt (the rest use the prompt's names).
GRID_NAMES = {
    "uniform": ("a", "width"),
    "triangular": ("a", "width", "mode_fraction"),
    "hypergeometric": ("M", "N", "success_fraction"),
}


def test_registry_holds_the_30_paper_families_in_table_order():
    assert list(FAMILIES) == list(PAPER_TABLE)


@pytest.mark.parametrize("family_id", PAPER_TABLE)
def test_family_record_matches_the_paper_table(family_id):
    display_name, tier, kind, parameter_names, scipy_name = PAPER_TABLE[family_id]
    family = get_family(family_id)
    assert (family.display_name, family.tier, family.kind) == (display_name, tier, kind)
    assert family.parameter_names == parameter_names
    assert family.grid_parameter_names == GRID_NAMES.get(family_id, parameter_names)
    assert family.scipy_name == scipy_name
    assert family.integer_only == (kind == "discrete")


def test_unknown_family_is_a_value_error_listing_the_known_ids():
    with pytest.raises(UnknownFamily) as error:
        get_family("normal")
    assert isinstance(error.value, ValueError)
    assert "'normal'" in str(error.value)
    assert all(family_id in str(error.value) for family_id in FAMILIES)


# --- grid -> materialized transforms --------------------------------------------------------------


def test_uniform_and_triangular_are_built_from_a_width():
    assert get_family("uniform").materialize({"a": 3.5, "width": 7}) == {"a": 3.5, "b": 10.5}
    triangular = get_family("triangular").materialize({"a": 2.5, "width": 7, "mode_fraction": 0.5})
    assert list(triangular.items()) == [("a", 2.5), ("c", 6.0), ("b", 9.5)]


@pytest.mark.parametrize(
    "family_id, grid_params, rounded",
    [
        ("binomial", {"n": 24.6, "p": 0.5}, {"n": 25.0}),
        ("binomial", {"n": 2.5, "p": 0.5}, {"n": 2.0}),  # Python round: half to even
        ("negative_binomial", {"r": 3.5, "p": 0.5}, {"r": 4.0}),
        ("beta_binomial", {"n": 40.4, "alpha": 6.5, "beta": 6.5}, {"n": 40.0}),
    ],
)
def test_counts_are_rounded_half_to_even_and_kept_as_floats(family_id, grid_params, rounded):
    materialized = get_family(family_id).materialize(grid_params)
    for name, value in rounded.items():
        assert materialized[name] == value and type(materialized[name]) is float


@pytest.mark.parametrize(
    "population, successes",
    [
        (30, [6, 10, 15, 20, 24]),
        (50, [10, 18, 25, 32, 40]),
        (80, [16, 28, 40, 52, 64]),
        (100, [20, 35, 50, 65, 80]),
        (120, [24, 42, 60, 78, 96]),
    ],
)
def test_hypergeometric_successes_follow_the_paper(population, successes):
    hypergeometric = get_family("hypergeometric")
    got = [
        hypergeometric.materialize({"M": population, "N": 5, "success_fraction": fraction})["K"]
        for fraction in (0.2, 0.35, 0.5, 0.65, 0.8)
    ]
    assert got == successes


def test_hypergeometric_draws_are_capped_by_the_population():
    materialized = get_family("hypergeometric").materialize({"M": 10, "N": 25, "success_fraction": 1.5})
    assert materialized == {"M": 10.0, "K": 10.0, "N": 10.0}


def test_materialize_rejects_unknown_grid_names():
    with pytest.raises(InvalidParameters) as error:
        get_family("uniform").materialize({"a": 0.0, "b": 1.0})
    assert error.value.key == "b" and "width" in str(error.value)


# --- scipy mapping and support --------------------------------------------------------------------


@pytest.mark.parametrize(
    "family_id, params, expected_mean",
    [
        ("exponential", {"lambda": 4.0}, 0.25),  # lambda is a rate
        ("gamma", {"alpha": 2.0, "beta": 3.0}, 6.0),  # beta is a scale
        ("negative_binomial", {"r": 3.0, "p": 0.25}, 9.0),  # failures before the r-th success
        ("geometric", {"p": 0.25}, 4.0),  # trials, so it starts at 1
        ("inverse_gaussian", {"mu": 5.0, "lambda": 7.0}, 5.0),
        ("hypergeometric", {"M": 100.0, "K": 50.0, "N": 20.0}, 10.0),
        ("uniform", {"a": 3.5, "b": 10.5}, 7.0),
        ("triangular", {"a": 0.0, "c": 3.0, "b": 3.0}, 2.0),
        ("pareto", {"alpha": 3.0, "xm": 2.0}, 3.0),
        ("lomax", {"alpha": 3.0, "lambda": 2.0}, 1.0),
        ("beta_binomial", {"n": 40.0, "alpha": 6.5, "beta": 6.5}, 20.0),
    ],
)
def test_parametrizations_give_the_paper_means(family_id, params, expected_mean):
    assert get_family(family_id).distribution(params).mean() == pytest.approx(expected_mean)


def test_lognormal_mu_and_sigma_are_those_of_the_underlying_normal():
    lognormal = get_family("lognormal").distribution({"mu": 2.5, "sigma": 2.0})
    assert lognormal.median() == pytest.approx(math.exp(2.5))


@pytest.mark.parametrize(
    "family_id, params, support",
    [
        ("gaussian", {"mu": 0.0, "sigma": 1.0}, (None, None)),
        ("bernoulli", {"p": 0.3}, (0.0, 1.0)),
        ("binomial", {"n": 25.0, "p": 0.5}, (0.0, 25.0)),
        ("geometric", {"p": 0.125}, (1.0, None)),
        ("pareto", {"alpha": 6.5, "xm": 3.5}, (3.5, None)),
        ("truncnorm", {"mu": 1.0, "sigma": 1.5, "lower": -1.0, "upper": 2.0}, (-1.0, 2.0)),
        ("hypergeometric", {"M": 30.0, "K": 24.0, "N": 15.0}, (9.0, 15.0)),
        ("skellam", {"mu1": 10.5, "mu2": 10.5}, (None, None)),
        ("chi", {"df": 2.0}, (0.0, None)),
    ],
)
def test_support_is_the_true_support(family_id, params, support):
    assert get_family(family_id).support(params) == support


# --- validation -----------------------------------------------------------------------------------

INVALID = [
    ("gaussian", {"mu": 0.0, "sigma": 1.0, "tau": 2.0}, "tau"),  # unknown key
    ("gaussian", {"mu": 0.0}, "sigma"),  # missing key
    ("gaussian", {"mu": math.inf, "sigma": 1.0}, "mu"),
    ("gaussian", {"mu": 0.0, "sigma": math.nan}, "sigma"),
    ("gaussian", {"mu": "0", "sigma": 1.0}, "mu"),
    ("gaussian", {"mu": True, "sigma": 1.0}, "mu"),
    ("gaussian", {"mu": 0.0, "sigma": 0.0}, "sigma"),
    ("cauchy", {"x0": 0.0, "gamma": -1.0}, "gamma"),
    ("exponential", {"lambda": 0.0}, "lambda"),
    ("poisson", {"lambda": -0.5}, "lambda"),
    ("bernoulli", {"p": 1.5}, "p"),
    ("binomial", {"n": 10.0, "p": -0.1}, "p"),
    ("binomial", {"n": 10.5, "p": 0.5}, "n"),
    ("binomial", {"n": -1.0, "p": 0.5}, "n"),
    ("geometric", {"p": 0.0}, "p"),  # scipy allows p in (0, 1]
    ("negative_binomial", {"r": 0.0, "p": 0.5}, "r"),
    ("negative_binomial", {"r": 3.0, "p": 0.0}, "p"),
    ("beta_binomial", {"n": 4.2, "alpha": 1.0, "beta": 1.0}, "n"),
    ("hypergeometric", {"M": 0.0, "K": 0.0, "N": 0.0}, "M"),
    ("hypergeometric", {"M": 30.5, "K": 10.0, "N": 5.0}, "M"),
    ("hypergeometric", {"M": 30.0, "K": 31.0, "N": 5.0}, "K"),
    ("hypergeometric", {"M": 30.0, "K": 10.0, "N": 31.0}, "N"),
    ("uniform", {"a": 2.0, "b": 2.0}, "b"),
    ("triangular", {"a": 0.0, "c": 4.0, "b": 3.0}, "c"),
    ("triangular", {"a": 0.0, "c": -1.0, "b": 3.0}, "c"),
    ("truncnorm", {"mu": 0.0, "sigma": 1.0, "lower": 1.0, "upper": -1.0}, "upper"),
    ("truncnorm", {"mu": 0.0, "sigma": 1.0, "lower": -math.inf, "upper": 1.0}, "lower"),
    ("student_t", {"nu": 0.0}, "nu"),
    ("skellam", {"mu1": 0.0, "mu2": 1.0}, "mu1"),
    ("weibull", {"k": -1.0, "lambda": 1.0}, "k"),
    ("pareto", {"alpha": 2.0, "xm": 0.0}, "xm"),
    ("inverse_gaussian", {"mu": 0.0, "lambda": 1.0}, "mu"),
]


@pytest.mark.parametrize("family_id, params, key", INVALID)
def test_invalid_parameters_name_family_and_key_on_one_line(family_id, params, key):
    family = get_family(family_id)
    with pytest.raises(InvalidParameters) as error:
        family.check_parameters(params)
    message = str(error.value)
    assert error.value.key == key and error.value.family_id == family_id
    assert message.startswith(f"{family_id}: parameter {key!r}") and "\n" not in message
    with pytest.raises(InvalidParameters):
        family.distribution(params)


@pytest.mark.parametrize(
    "family_id, params, allowed",
    [
        ("geometric", {"p": 0.0}, "in (0, 1]"),
        ("bernoulli", {"p": 1.5}, "in [0, 1]"),
        ("gaussian", {"mu": 0.0, "sigma": -1.0}, "a number > 0"),
        ("poisson", {"lambda": -1.0}, "a number >= 0"),
        ("binomial", {"n": 10.5, "p": 0.5}, "an integer >= 0"),
        ("hypergeometric", {"M": 30.0, "K": 31.0, "N": 5.0}, "an integer in [0, M (= 30.0)]"),
        ("uniform", {"a": 2.0, "b": 1.0}, "a number > a (= 2.0)"),
        ("gaussian", {"mu": 0.0, "sigma": 1.0, "tau": 2.0}, "expected mu, sigma"),
    ],
)
def test_invalid_parameter_messages_state_the_allowed_values(family_id, params, allowed):
    with pytest.raises(InvalidParameters, match=re.escape(allowed)):
        get_family(family_id).check_parameters(params)


def test_boundary_values_that_scipy_accepts_are_valid():
    get_family("geometric").check_parameters({"p": 1.0})
    get_family("bernoulli").check_parameters({"p": 0.0})
    get_family("poisson").check_parameters({"lambda": 0.0})
    get_family("binomial").check_parameters({"n": 0.0, "p": 1.0})
    get_family("triangular").check_parameters({"a": 0.0, "c": 0.0, "b": 1.0})
    get_family("hypergeometric").check_parameters({"M": 30.0, "K": 30.0, "N": 30.0})


@pytest.mark.parametrize("family_id", list(FAMILIES))
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_random_valid_parameters_give_a_sane_scipy_distribution(family_id, data):
    family = get_family(family_id)
    params = data.draw(valid_params(family))
    family.check_parameters(params)
    distribution = family.distribution(params)

    median = distribution.median()
    assert math.isfinite(median)
    assert 0.5 - 1e-9 <= distribution.cdf(median) <= 1.0
    # The quantiles the target builder reads must exist.
    assert all(math.isfinite(q) for q in distribution.ppf([0.001, 0.999]))

    # truncnorm's scipy support is mu + ((lower - mu) / sigma) * sigma, equal to lower up to rounding.
    lower, upper = family.support(params)
    scipy_lower, scipy_upper = distribution.support()
    assert scipy_lower == (-math.inf if lower is None else pytest.approx(lower, rel=1e-12, abs=1e-12))
    assert scipy_upper == (math.inf if upper is None else pytest.approx(upper, rel=1e-12, abs=1e-12))


# --- extending the registry -----------------------------------------------------------------------


@pytest.fixture
def half_normal():
    family = Family(
        "half_normal", "Half-Normal", "II", "continuous", (positive("sigma"),),
        "halfnorm", lambda p: {"scale": p["sigma"]}, lambda p: (0.0, None),
    )
    yield register_family(family)
    del FAMILIES["half_normal"]


def test_a_new_family_is_one_registry_entry(half_normal):
    assert get_family("half_normal") is half_normal
    assert half_normal.distribution({"sigma": 2.0}).median() == pytest.approx(2.0 * 0.6744897501960817)
    with pytest.raises(ValueError, match="already registered"):
        register_family(half_normal)


@pytest.mark.parametrize(
    "arguments, problem",
    [
        (dict(tier="IV"), "tier"),
        (dict(kind="mixed"), "kind"),
        (dict(scipy_name="no_such_distribution"), "scipy.stats"),
        (dict(domains=(real("mu"), Param("sigma", lower="tau"))), "unknown or cyclic"),
    ],
)
def test_malformed_families_are_rejected_when_defined(arguments, problem):
    definition = dict(
        family_id="broken", display_name="Broken", tier="I", kind="continuous",
        domains=(real("mu"), positive("sigma")), scipy_name="norm",
        to_scipy=lambda p: {}, support_of=lambda p: (None, None),
    )
    with pytest.raises(ValueError, match=problem):
        Family(**(definition | arguments))


def test_typical_ranges_must_lie_inside_the_domain():
    with pytest.raises(ValueError, match="leaves its domain"):
        positive("sigma", typical=(0.0, 1.0))
