"""The paper's grids and splits (§2) and the prompt specs built from them (§1.3 ids, §3.1 prompt text)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import prompt_specs

from cft.families import FAMILIES, InvalidParameters, get_family
from cft.grids import (
    PAPER_GRIDS,
    PAPER_HELDOUT_FAMILIES,
    PAPER_TRAIN_FAMILIES,
    SELECTIONS,
    SPLITS,
    FamilyGrids,
    build_splits,
    geo,
    grid,
    lin,
)
from cft.prompts import PromptSpec, render_prompt


@pytest.fixture(scope="module")
def full_grid():
    return build_splits(PAPER_TRAIN_FAMILIES, PAPER_HELDOUT_FAMILIES, "full_grid")


@pytest.fixture(scope="module")
def paper_selected():
    return build_splits(PAPER_TRAIN_FAMILIES, PAPER_HELDOUT_FAMILIES, "paper_selected")


def ids(specs):
    return [spec.distribution_id for spec in specs]


# --- the paper's partition and split sizes --------------------------------------------------------


def test_split_names():
    assert SPLITS == ("train", "unseen", "heldout")


def test_24_train_and_6_heldout_families_and_heldout_covers_every_tier():
    assert len(PAPER_TRAIN_FAMILIES) == 24
    assert set(PAPER_HELDOUT_FAMILIES) == {"bernoulli", "poisson", "maxwell", "truncnorm", "chi", "weibull"}
    assert set(PAPER_TRAIN_FAMILIES) | set(PAPER_HELDOUT_FAMILIES) == set(FAMILIES)
    assert {get_family(family_id).tier for family_id in PAPER_HELDOUT_FAMILIES} == {"I", "II", "III"}


@pytest.mark.parametrize(
    "selection, sizes",
    [
        ("full_grid", {"train": 1988, "unseen": 591, "heldout": 92}),
        ("paper_selected", {"train": 1988, "unseen": 24, "heldout": 18}),
    ],
)
def test_split_sizes_match_the_paper(selection, sizes, request):
    splits = request.getfixturevalue(selection)
    assert {split: len(specs) for split, specs in splits.items()} == sizes


# family: (train, unseen) grid sizes from §2.3
PAPER_GRID_SIZES = {
    "uniform": (121, 36), "gaussian": (121, 36), "beta": (121, 36), "binomial": (44, 10),
    "exponential": (25, 12), "geometric": (13, 10), "negative_binomial": (44, 12),
    "lognormal": (121, 36), "triangular": (125, 27), "rayleigh": (25, 12), "cauchy": (121, 36),
    "student_t": (12, 6), "chi_square": (13, 6), "f_distribution": (16, 4), "gamma": (121, 36),
    "laplace": (121, 36), "logistic": (121, 36), "pareto": (99, 30), "hypergeometric": (45, 12),
    "gumbel": (121, 36), "skellam": (121, 36), "beta_binomial": (75, 18), "lomax": (121, 36),
    "inverse_gaussian": (121, 36),
}
PAPER_OOD_SIZES = {"bernoulli": 5, "poisson": 17, "weibull": 36, "maxwell": 9, "chi": 9, "truncnorm": 16}


@pytest.mark.parametrize("family_id", PAPER_GRID_SIZES)
def test_train_family_grid_sizes(family_id):
    grids = PAPER_GRIDS[family_id]
    assert (len(grids.train), len(grids.unseen)) == PAPER_GRID_SIZES[family_id]
    assert len(grids.selected) == 1
    assert grids.ood is None and grids.ood_selected is None


@pytest.mark.parametrize("family_id", PAPER_OOD_SIZES)
def test_heldout_family_grid_sizes(family_id):
    grids = PAPER_GRIDS[family_id]
    assert len(grids.ood) == PAPER_OOD_SIZES[family_id] and len(grids.ood_selected) == 3
    assert grids.train is None and grids.unseen is None


@pytest.mark.parametrize("selection", SELECTIONS)
def test_ids_are_unique_per_split_and_unseen_never_repeats_train(selection, request):
    splits = request.getfixturevalue(selection)
    for specs in splits.values():
        assert len(set(ids(specs))) == len(specs)
    assert not set(ids(splits["train"])) & set(ids(splits["unseen"]))


def test_splits_list_families_in_the_given_order(paper_selected):
    assert [spec.family_id for spec in paper_selected["unseen"]] == list(PAPER_TRAIN_FAMILIES)
    heldout_order = [spec.family_id for spec in paper_selected["heldout"]][::3]
    assert heldout_order == list(PAPER_HELDOUT_FAMILIES)


# --- grid values ----------------------------------------------------------------------------------


def test_geomspace_examples():
    # numpy gives 7.999999999999999 and 63.999999999999986, and those raw values reach the prompts.
    assert geo(1, 16, 5) == pytest.approx([1, 2, 4, 8, 16], rel=1e-15)
    assert geo(32, 128, 3) == pytest.approx([32, 64, 128], rel=1e-15)
    assert geo(0.5, 2, 11)[1] == 0.5743491774985174


def test_linspace_keeps_float_noise():
    assert lin(-5, 2, 11)[3] == -2.9000000000000004
    assert lin(-5, 2, 11) == tuple(np.linspace(-5.0, 2.0, 11).tolist())


def test_grid_varies_the_first_parameter_slowest():
    points = grid({"a": (1, 2), "b": (10, 20, 30)})
    assert [(point["a"], point["b"]) for point in points] == [
        (1, 10), (1, 20), (1, 30), (2, 10), (2, 20), (2, 30)
    ]
    assert all(type(value) is float for point in points for value in point.values())


def test_uniform_train_grid_order(full_grid):
    uniform = [spec.param_dict for spec in full_grid["train"] if spec.family_id == "uniform"]
    assert {spec["a"] for spec in uniform[:11]} == {-5.0}
    assert [spec["b"] for spec in uniform[:3]] == [-4.0, -3.6, pytest.approx(-3.2)]


def test_grid_points_must_name_the_grid_parameters_in_order():
    with pytest.raises(ValueError, match="a, width"):
        FamilyGrids("uniform", train=({"width": 1.0, "a": 0.0},))


# --- prompts and ids of the splits ----------------------------------------------------------------


def test_example_ids(full_grid, paper_selected):
    assert {"uniform_a_m5_b_m3p6", "gaussian_mu_m2_sigma_1p741101"} <= set(ids(full_grid["train"]))
    assert "hypergeometric_M_100_K_50_N_20" in ids(paper_selected["unseen"])
    assert "truncnorm_mu_0_sigma_1_lower_m1_upper_1" in ids(paper_selected["heldout"])


def test_raw_float_reprs_reach_the_prompts(full_grid):
    prompts = " ".join(spec.prompt for spec in full_grid["train"])
    for text in ("a=-2.9000000000000004", "b=0.09999999999999964", "sigma=0.5743491774985174"):
        assert text in prompts


@pytest.mark.parametrize(
    "distribution_id, prompt",
    [
        ("binomial_n_25_p_0p5",
         "Generate exactly ONE random number from a Binomial distribution with parameters n=25.0, p=0.5. "
         "Output ONLY the number."),
        ("triangular_a_2p5_c_6_b_9p5",
         "Generate exactly ONE random number from a Triangular distribution with parameters "
         "a=2.5, c=6.0, b=9.5. Output ONLY the number."),
        ("hypergeometric_M_100_K_50_N_20",
         "Generate exactly ONE random number from a Hypergeometric distribution with parameters "
         "M=100.0, K=50.0, N=20.0. Output ONLY the number."),
        ("beta_binomial_n_40_alpha_6p5_beta_6p5",
         "Generate exactly ONE random number from a Beta-Binomial distribution with parameters "
         "n=40.0, alpha=6.5, beta=6.5. Output ONLY the number."),
        ("uniform_a_3p5_b_10p5",
         "Generate exactly ONE random number from a Uniform distribution with parameters a=3.5, b=10.5. "
         "Output ONLY the number."),
        ("exponential_lambda_7",
         "Generate exactly ONE random number from a Exponential distribution with parameters lambda=7.0. "
         "Output ONLY the number."),
        ("f_distribution_d1_12_d2_24",
         "Generate exactly ONE random number from a F-Distribution distribution with parameters "
         "d1=12.0, d2=24.0. Output ONLY the number."),
    ],
)
def test_selected_unseen_prompts(paper_selected, distribution_id, prompt):
    by_id = {spec.distribution_id: spec for spec in paper_selected["unseen"]}
    assert by_id[distribution_id].prompt == prompt


def test_selected_heldout_points(paper_selected):
    assert ids(paper_selected["heldout"]) == [
        "bernoulli_p_0p1", "bernoulli_p_0p5", "bernoulli_p_0p9",
        "poisson_lambda_1", "poisson_lambda_4", "poisson_lambda_12",
        "maxwell_scale_0p75", "maxwell_scale_1p5", "maxwell_scale_2p5",
        "truncnorm_mu_0_sigma_1_lower_m1_upper_1", "truncnorm_mu_0_sigma_1_lower_m2_upper_2",
        "truncnorm_mu_1_sigma_1p5_lower_m1_upper_2",
        "weibull_k_0p5_lambda_0p5", "weibull_k_1p5_lambda_1p5", "weibull_k_3_lambda_3",
        "chi_df_2", "chi_df_5", "chi_df_10",
    ]
    truncnorm = next(spec for spec in paper_selected["heldout"] if spec.family_id == "truncnorm")
    assert "parameters mu=0.0, sigma=1.0, lower=-1.0, upper=1.0." in truncnorm.prompt


# §5.5: the first 8 prompts of epoch 0 (seed 11), printed to 6 decimals.
GOLDEN_FIRST_PROMPTS = [
    ("lomax", (2.220643, 0.715485)),
    ("rayleigh", (0.529732,)),
    ("triangular", (0.0, 1.5, 3.0)),
    ("cauchy", (-2.0, 1.0)),
    ("skellam", (8.0, 2.828427)),
    ("gaussian", (1.6, 1.319508)),
    ("exponential", (0.807799,)),
    ("gamma", (2.626528, 2.626528)),
]


@pytest.mark.parametrize("family_id, rounded_values", GOLDEN_FIRST_PROMPTS)
def test_golden_training_prompts_are_train_points(full_grid, family_id, rounded_values):
    train = {
        tuple(round(value, 6) for _, value in spec.params)
        for spec in full_grid["train"]
        if spec.family_id == family_id
    }
    assert rounded_values in train


# --- build_splits errors --------------------------------------------------------------------------


def test_a_family_cannot_be_both_trained_on_and_held_out():
    with pytest.raises(ValueError, match="poisson"):
        build_splits(["uniform", "poisson"], ["poisson"], "full_grid")


def test_a_family_cannot_be_listed_twice():
    with pytest.raises(ValueError, match="uniform"):
        build_splits(["uniform", "uniform"], [], "full_grid")


def test_unknown_selection_is_rejected():
    with pytest.raises(ValueError, match="paper_selected, full_grid"):
        build_splits(["uniform"], [], "everything")


def test_unknown_family_is_rejected():
    with pytest.raises(ValueError, match="known families"):
        build_splits(["normal"], [], "full_grid")


@pytest.mark.parametrize(
    "train, heldout, selection, missing",
    [
        (["bernoulli"], [], "full_grid", "'bernoulli' has no 'train' grid"),
        ([], ["uniform"], "full_grid", "'uniform' has no 'ood' grid"),
        ([], ["uniform"], "paper_selected", "'uniform' has no 'ood_selected' grid"),
    ],
)
def test_a_family_without_the_needed_grid_is_rejected(train, heldout, selection, missing):
    with pytest.raises(ValueError, match=missing):
        build_splits(train, heldout, selection)


def test_paper_selected_needs_selected_points():
    grids = {"uniform": FamilyGrids("uniform", train=PAPER_GRIDS["uniform"].train,
                                    unseen=PAPER_GRIDS["uniform"].unseen)}
    assert len(build_splits(["uniform"], [], "full_grid", grids)["unseen"]) == 36
    with pytest.raises(ValueError, match="'uniform' has no 'selected' grid"):
        build_splits(["uniform"], [], "paper_selected", grids)


def test_a_family_without_grids_is_rejected():
    with pytest.raises(ValueError, match="'gaussian' has no registered grids"):
        build_splits(["gaussian"], [], "full_grid", grids={})


def test_grid_points_that_collide_after_rounding_are_rejected():
    grids = {"binomial": FamilyGrids("binomial", train=grid({"n": (5.2, 5.4), "p": (0.5,)}),
                                     unseen=grid({"n": (30,), "p": (0.5,)}))}
    with pytest.raises(ValueError, match="binomial_n_5_p_0p5"):
        build_splits(["binomial"], [], "full_grid", grids)


def test_unseen_points_that_repeat_train_points_are_rejected():
    points = grid({"p": (0.5,)})
    grids = {"geometric": FamilyGrids("geometric", train=points, unseen=points)}
    with pytest.raises(ValueError, match="geometric_p_0p5"):
        build_splits(["geometric"], [], "full_grid", grids)


def test_invalid_grid_points_raise_invalid_parameters():
    grids = {"exponential": FamilyGrids("exponential", ood=grid({"lambda": (-1.0,)}))}
    with pytest.raises(InvalidParameters, match="lambda"):
        build_splits([], ["exponential"], "full_grid", grids)


# --- PromptSpec -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, slug",
    [(-5.0, "m5"), (-3.6, "m3p6"), (1.7411011265922482, "1p741101"), (-2.9000000000000004, "m2p9"),
     (0.09999999999999964, "0p1"), (100.0, "100"), (0.125, "0p125"), (-0.0, "0")],
)
def test_distribution_id_slugs(value, slug):
    spec = PromptSpec.from_params("gaussian", {"mu": value, "sigma": 1.0})
    assert spec.distribution_id == f"gaussian_mu_{slug}_sigma_1"


def test_spec_from_grid_materializes():
    grid_point = {"a": 2.5, "width": 7.0, "mode_fraction": 0.5}
    spec = PromptSpec.from_grid("triangular", grid_point)
    assert spec.params == (("a", 2.5), ("c", 6.0), ("b", 9.5))
    assert spec.family is get_family("triangular")
    assert PromptSpec.from_grid(get_family("triangular"), grid_point) == spec


def test_spec_params_must_be_valid_and_in_prompt_order():
    with pytest.raises(ValueError, match="prompt order"):
        PromptSpec("triangular", (("a", 2.5), ("b", 9.5), ("c", 6.0)))
    with pytest.raises(InvalidParameters):
        PromptSpec("gaussian", (("mu", 0.0), ("sigma", -1.0)))
    assert PromptSpec.from_params("triangular", {"b": 9.5, "a": 2.5, "c": 6.0}).param_dict == {
        "a": 2.5, "c": 6.0, "b": 9.5
    }


def test_numpy_values_print_like_python_floats():
    spec = PromptSpec.from_params("binomial", {"n": np.float64(25.0), "p": np.float64(0.5)})
    assert all(type(value) is float for _, value in spec.params)
    assert "n=25.0, p=0.5." in spec.prompt
    assert render_prompt(get_family("binomial"), {"n": np.float64(25.0), "p": np.float64(0.5)}) == spec.prompt


def test_every_split_spec_round_trips_through_json(full_grid):
    for specs in full_grid.values():
        for spec in specs:
            restored = PromptSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
            assert restored == spec and restored.prompt == spec.prompt


@settings(max_examples=60, deadline=None)
@given(spec=prompt_specs())
def test_random_specs_round_trip_and_print_their_values(spec):
    assert PromptSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert f"from a {spec.family.display_name} distribution" in spec.prompt
    for name, value in spec.params:
        assert f"{name}={value!r}" in spec.prompt
