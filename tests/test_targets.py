"""Output spaces: the paper's golden values (structured-sampling.md sections 4.3, 5.5) and invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import valid_params

from cft.families import FAMILIES, get_family
from cft.grids import PAPER_HELDOUT_FAMILIES, PAPER_TRAIN_FAMILIES, build_splits
from cft.prompts import PromptSpec
from cft.targets import SOFT_TARGET, TargetSettings, build_output_space, sample_index, sample_indices


def space_of(family_id: str, params: dict[str, float], **options):
    return TargetSettings(**options).space(PromptSpec.from_params(family_id, params))


@pytest.mark.parametrize(
    ("family_id", "params", "first", "last"),
    [
        ("binomial", {"n": 25.0, "p": 0.5}, 0, 25),
        ("geometric", {"p": 0.125}, 1, 52),
        ("negative_binomial", {"r": 15.0, "p": 0.15}, 0, 176),
        ("hypergeometric", {"M": 100.0, "K": 50.0, "N": 20.0}, 0, 20),
        ("skellam", {"mu1": 10.5, "mu2": 10.5}, -14, 14),
        ("beta_binomial", {"n": 40.0, "alpha": 6.5, "beta": 6.5}, 0, 40),
        ("bernoulli", {"p": 0.1}, 0, 1),
        ("poisson", {"lambda": 1.0}, 0, 5),
        ("poisson", {"lambda": 4.0}, 0, 11),
        ("poisson", {"lambda": 12.0}, 0, 24),
    ],
)
def test_integer_atoms_of_selected_prompts(family_id, params, first, last):
    space = space_of(family_id, params)
    assert space.values == [str(k) for k in range(first, last + 1)]
    assert space.integer_only and space.decimals == 0


def test_integer_atoms_ignore_decimals_and_bins_setting():
    coarse = space_of("negative_binomial", {"r": 15.0, "p": 0.15}, decimals=2, max_bins=16384)
    assert len(coarse.values) == 177


def test_poisson_target_folds_upper_tail_into_last_value():
    space = space_of("poisson", {"lambda": 1.0})
    expected = [0.367879, 0.367879, 0.18394, 0.061313, 0.015328, 0.00366]
    np.testing.assert_allclose(space.probs, expected, atol=5e-6)
    assert space.probs[-1] == pytest.approx(scipy.stats.poisson(1.0).sf(4))


def test_finite_integer_support_keeps_negligible_values():
    space = space_of("binomial", {"n": 20.0, "p": 0.8})
    assert space.values[0] == "0"
    assert space.probs[0] == pytest.approx(0.2**20, rel=1e-9)


def test_skellam_lower_tail_is_dropped_by_renormalization():
    dist = scipy.stats.skellam(10.5, 10.5)
    space = space_of("skellam", {"mu1": 10.5, "mu2": 10.5})
    kept = dist.pmf(np.arange(-14, 15))
    kept[-1] += dist.sf(14)
    np.testing.assert_allclose(space.probs, kept / kept.sum(), rtol=1e-12)
    assert dist.cdf(-15) > 1e-4  # the dropped mass is real


def test_integer_atoms_truncate_to_max_bins():
    space = space_of("binomial", {"n": 50.0, "p": 0.5}, max_bins=10)
    assert space.values == [str(k) for k in range(10)]
    assert space.probs.sum() == pytest.approx(1.0)


def test_gaussian_target():
    space = space_of("gaussian", {"mu": 3.5, "sigma": 3.0})
    assert len(space.values) == 1001
    assert space.values[0] == "-5.77069" and space.values[-1] == "12.77069"
    assert space.probs[0] == pytest.approx(1.010e-3, abs=1e-6)
    assert space.probs[-1] == pytest.approx(1.010e-3, abs=1e-6)
    assert (space.decimals, space.lower, space.upper) == (5, None, None)


def test_bounded_support_is_quantile_trimmed():
    space = space_of("uniform", {"a": 3.5, "b": 10.5})
    assert space.values[:2] == ["3.50700", "3.51398"]
    assert space.values[-1] == "10.49300"
    assert (space.lower, space.upper) == (3.5, 10.5)


def test_cauchy_bins_are_coarse():
    values = np.array(space_of("cauchy", {"x0": 3.5, "gamma": 3.0}).values, dtype=float)
    assert values[0] == pytest.approx(-951.43, abs=0.01)
    assert values[-1] == pytest.approx(958.43, abs=0.01)
    assert np.diff(values).mean() == pytest.approx(1.91, abs=0.01)


@pytest.mark.parametrize(("max_bins", "first_mass"), [(1001, 0.24), (16384, 0.02)])
def test_lognormal_first_atom_collects_the_lower_cells(max_bins, first_mass):
    space = space_of("lognormal", {"mu": 2.5, "sigma": 2.0}, max_bins=max_bins)
    assert len(space.values) == max_bins
    assert space.values[0] == "0.02522"
    assert space.probs[0] == pytest.approx(first_mass, abs=0.005)


def test_weibull_first_atom_mass():
    space = space_of("weibull", {"k": 0.5, "lambda": 0.5})
    assert space.values[0] == "0.00001"
    assert space.probs[0] == pytest.approx(0.143, abs=0.0005)


@pytest.mark.parametrize(
    ("family_id", "params", "atoms"),
    [
        ("uniform", {"a": 3.5, "b": 10.5}, 699),
        ("beta", {"alpha": 7.0, "beta": 7.0}, 71),
        ("exponential", {"lambda": 7.0}, 98),
        ("truncnorm", {"mu": 0.0, "sigma": 1.0, "lower": -1.0, "upper": 1.0}, 199),
    ],
)
def test_two_decimal_atom_counts(family_id, params, atoms):
    space = space_of(family_id, params, decimals=2)
    assert len(space.values) == atoms
    assert all(len(v.split(".")[1]) == 2 for v in space.values)


def test_subsampling_keeps_both_ends_at_floor_linspace_indices():
    # Window [0.001, 0.999] holds the 99 multiples 0.01..0.99; floor(linspace(0, 98, 5)) = 0, 24, 49, 73, 98.
    space = space_of("uniform", {"a": 0.0, "b": 1.0}, decimals=2, max_bins=5)
    assert space.values == ["0.01", "0.25", "0.50", "0.74", "0.99"]


def test_voronoi_cells_and_edge_tails():
    dist = scipy.stats.norm(0.0, 1.0)
    space = build_output_space(dist, (None, None), False, TargetSettings(decimals=1))
    centers = np.array(space.values, dtype=float)
    low, high = dist.ppf(0.001), dist.ppf(0.999)
    boundaries = np.concatenate(([low], (centers[:-1] + centers[1:]) / 2, [high]))
    expected = np.diff(dist.cdf(boundaries))
    expected[0] += dist.cdf(low)
    expected[-1] += dist.sf(high)
    np.testing.assert_allclose(space.probs, expected / expected.sum(), rtol=1e-12)
    assert space.values[0] == "-3.0" and space.values[-1] == "3.0"


def test_window_without_grid_point_gives_one_rounded_atom():
    space = space_of("uniform", {"a": 0.1001, "b": 0.1002}, decimals=2)
    assert space.values == ["0.10"]
    np.testing.assert_array_equal(space.probs, [1.0])


class _QuantilesUndefined:
    """A distribution whose ppf fails, as happens for degenerate parameters."""

    def ppf(self, q):
        return np.full(np.shape(q), np.nan)

    def cdf(self, x):
        return scipy.stats.norm.cdf(x)


def test_undefined_window_falls_back_to_minus_ten_ten():
    space = build_output_space(_QuantilesUndefined(), (None, None), False, TargetSettings(decimals=0))
    assert space.values == [str(k) for k in range(-10, 11)]


def test_strings_use_fixed_decimals_without_exponent():
    space = space_of("exponential", {"lambda": 7.0})
    assert all(v.startswith("0.") and len(v) == 7 for v in space.values[:100])
    assert "e" not in "".join(space.values)


def test_sample_index_is_the_generator_choice():
    probs = space_of("gaussian", {"mu": 3.5, "sigma": 3.0}).probs
    for seed in range(20):
        expected = np.random.default_rng(seed).choice(len(probs), p=probs)
        assert sample_index(probs, seed) == expected


def test_sample_indices_match_one_draw_per_seed():
    probs = space_of("skellam", {"mu1": 8.0, "mu2": 2.828427}).probs
    seeds = list(range(11, 411))
    np.testing.assert_array_equal(sample_indices(probs, seeds), [sample_index(probs, s) for s in seeds])


def test_first_sampled_training_strings():
    train = build_splits(PAPER_TRAIN_FAMILIES, PAPER_HELDOUT_FAMILIES, "paper_selected")["train"]
    # The first eight prompts of epoch 0 under seed 11 and their drawn strings (seeds 11..18).
    golden = [
        ("lomax", {"alpha": 2.220643, "lambda": 0.715485}, "0.04634"),
        ("rayleigh", {"sigma": 0.529732}, "0.40302"),
        ("triangular", {"a": 0.0, "c": 1.5, "b": 3.0}, "2.21932"),
        ("cauchy", {"x0": -2.0, "gamma": 1.0}, "-0.09015"),
        ("skellam", {"mu1": 8.0, "mu2": 2.828427}, "7"),
        ("gaussian", {"mu": 1.6, "sigma": 1.319508}, "1.82018"),
        ("exponential", {"lambda": 0.807799}, "2.30976"),
        ("gamma", {"alpha": 2.626528, "beta": 2.626528}, "5.09927"),
    ]
    for seed, (family_id, rounded, expected) in enumerate(golden, start=11):
        matches = [
            spec for spec in train
            if spec.family_id == family_id
            and all(math.isclose(spec.param_dict[k], v, abs_tol=1e-6) for k, v in rounded.items())
        ]
        assert len(matches) == 1, (family_id, rounded)
        space = SOFT_TARGET.space(matches[0])
        assert space.values[sample_index(space.probs, seed)] == expected


@pytest.mark.parametrize("family_id", list(FAMILIES))
@settings(max_examples=15, deadline=None)
@given(data=st.data(), decimals=st.sampled_from([2, 5]))
def test_output_space_invariants(family_id, data, decimals):
    params = data.draw(valid_params(family_id))
    family = get_family(family_id)
    space = space_of(family_id, params, decimals=decimals)
    assert np.all(np.isfinite(space.probs)) and np.all(space.probs >= 0)
    assert space.probs.sum() == pytest.approx(1.0, abs=1e-12)
    assert len(set(space.values)) == len(space.values)
    parse = int if family.integer_only else float
    numbers = np.array([parse(v) for v in space.values], dtype=float)
    assert np.all(np.diff(numbers) > 0)
    # A window narrower than one grid step collapses to its rounded midpoint: half a step of slack.
    slack = 0.0 if family.integer_only else 0.5 * 10.0**-decimals
    lower, upper = family.support(params)
    assert lower is None or numbers[0] >= lower - slack
    assert upper is None or numbers[-1] <= upper + slack


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_no_paper_prompt_fails_the_window_check():
    """`check_window` (cft target's guard, which also treats scipy's warnings as errors) refuses only
    windows the paper's prompts never need (at the soft targets' 1001 bins; hard targets keep more)."""
    splits = build_splits(PAPER_TRAIN_FAMILIES, PAPER_HELDOUT_FAMILIES, "full_grid")
    for spec in (spec for specs in splits.values() for spec in specs):
        SOFT_TARGET.check_window(spec)


@pytest.mark.parametrize(("settings", "message"), [
    ({"decimals": 9}, "target key 'decimals': 9 is not an integer from 0 to 8"),
    ({"decimals": 2.0}, "target key 'decimals': 2.0 is not an integer from 0 to 8"),
    ({"max_bins": 1}, "target key 'max_bins': 1 is not an integer from 2 to 1000000"),
    ({"quantile_low": 0.6}, "must satisfy 0 < quantile_low < 0.5 < quantile_high < 1"),
    ({"quantile_high": 1.0}, "must satisfy 0 < quantile_low < 0.5 < quantile_high < 1"),
    ({"bins": 10}, "unknown target key 'bins'; allowed: decimals, max_bins, quantile_low, quantile_high"),
])
def test_target_settings_refuse_bad_values_naming_the_key(settings, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TargetSettings.of(settings)


def test_target_settings_build_the_space_and_the_trie_of_a_prompt():
    from tiny_models import char_tokenizer

    from cft.trie import TokenTrie

    spec = PromptSpec.from_params("gaussian", {"mu": 0.0, "sigma": 1.0})
    target = TargetSettings.of({"decimals": 2, "max_bins": 40, "quantile_low": 0.01, "quantile_high": 0.99})
    family = spec.family
    space = target.space(spec)
    assert space.values == build_output_space(family.distribution(spec.param_dict), family.support(spec.param_dict),
                                              False, target).values
    assert len(space.values) == 40 and space.decimals == 2
    # The window starts at the first multiple of 0.01 above the 1% quantile.
    assert 0 <= float(space.values[0]) - scipy.stats.norm.ppf(0.01) < 0.01
    tokenizer = char_tokenizer()
    trie = target.trie(spec, tokenizer, eos_id=tokenizer.eos_token_id)
    expected = TokenTrie.from_output_space(space, tokenizer, eos_id=tokenizer.eos_token_id)
    assert trie.sequences == expected.sequences and np.array_equal(trie.probs, expected.probs)
