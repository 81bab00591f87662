"""The paper's parameter grids (in grid-parameter space) and the three splits built from them.

Each family that takes part in the splits has one :class:`FamilyGrids` entry in ``PAPER_GRIDS``:

* ``train`` and ``unseen`` (the paper's ``test_unseen``) for families that are trained on; ``selected``
  (the paper's ``test_selected``) replaces ``unseen`` under ``selection="paper_selected"``;
* ``ood`` and ``ood_selected`` for held-out families.

Grids are Cartesian products with the first parameter varying slowest (itertools.product order).
Values come from numpy's linspace/geomspace and stay raw float64, so the prompts carry the float noise
the paper's prompts carry (``a=-2.9000000000000004``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np

from cft.families import get_family
from cft.prompts import PromptSpec

SPLITS = ("train", "unseen", "heldout")
SELECTIONS = ("paper_selected", "full_grid")

Point = dict[str, float]  # one grid point, keys in the family's grid_parameter_names order
Points = tuple[Point, ...]


def lin(start: float, stop: float, num: int) -> tuple[float, ...]:
    """numpy.linspace, endpoints included."""
    return tuple(np.linspace(start, stop, num).tolist())


def geo(start: float, stop: float, num: int) -> tuple[float, ...]:
    """numpy.geomspace (the paper's ``spacing: logspace``), endpoints included."""
    return tuple(np.geomspace(start, stop, num).tolist())


def grid(axes: Mapping[str, Sequence[float]]) -> Points:
    """Cartesian product of the axes, the first axis varying slowest."""
    names = tuple(axes)
    return tuple(
        dict(zip(names, (float(value) for value in combination)))
        for combination in itertools.product(*axes.values())
    )


@dataclass(frozen=True)
class FamilyGrids:
    """The grid points of one family for each role; None where the family has no such grid."""

    family_id: str
    train: Points | None = None
    unseen: Points | None = None
    selected: Points | None = None
    ood: Points | None = None
    ood_selected: Points | None = None

    def __post_init__(self) -> None:
        expected = get_family(self.family_id).grid_parameter_names
        for role in self.roles():
            for point in getattr(self, role) or ():
                if tuple(point) != expected:
                    raise ValueError(
                        f"{self.family_id}: {role} point {point} must name the grid parameters "
                        f"{', '.join(expected)} in that order"
                    )

    @staticmethod
    def roles() -> tuple[str, ...]:
        return tuple(f.name for f in fields(FamilyGrids) if f.name != "family_id")


PAPER_GRIDS: dict[str, FamilyGrids] = {}


def register_grids(family_grids: FamilyGrids) -> FamilyGrids:
    """Add one family's grids to PAPER_GRIDS; a family can be registered only once."""
    if family_grids.family_id in PAPER_GRIDS:
        raise ValueError(f"grids for family {family_grids.family_id!r} are already registered")
    PAPER_GRIDS[family_grids.family_id] = family_grids
    return family_grids


def _role_for(split: str, selection: str) -> str:
    if split == "train":
        return "train"
    if split == "unseen":
        return "selected" if selection == "paper_selected" else "unseen"
    return "ood_selected" if selection == "paper_selected" else "ood"


def _specs_for(
    family_id: str, split: str, selection: str, grids: Mapping[str, FamilyGrids]
) -> list[PromptSpec]:
    family = get_family(family_id)
    if family_id not in grids:
        raise ValueError(f"family {family_id!r} has no registered grids")
    role = _role_for(split, selection)
    points = getattr(grids[family_id], role)
    if points is None:
        raise ValueError(
            f"family {family_id!r} has no {role!r} grid, which the {split!r} split needs "
            f"under selection={selection!r}"
        )
    return [PromptSpec.from_grid(family, point) for point in points]


def _check_unique_ids(split: str, specs: list[PromptSpec]) -> None:
    # Ids name files and table rows, so two grid points that materialize alike must not slip through.
    seen: set[str] = set()
    for spec in specs:
        if spec.distribution_id in seen:
            raise ValueError(f"split {split!r} contains {spec.distribution_id!r} twice")
        seen.add(spec.distribution_id)


def build_splits(
    train_families: Iterable[str],
    heldout_families: Iterable[str],
    selection: str,
    grids: Mapping[str, FamilyGrids] = PAPER_GRIDS,
) -> dict[str, list[PromptSpec]]:
    """The ``train``, ``unseen`` and ``heldout`` prompt specs, family by family in the given order.

    Train families give the train split and the unseen-parameter split; held-out families give the
    held-out split. ``selection`` is "full_grid" (unseen and ood grids) or "paper_selected" (the
    paper's few selected points instead).
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, got {selection!r}")
    train_families, heldout_families = tuple(train_families), tuple(heldout_families)
    for name, families in (("train_families", train_families), ("heldout_families", heldout_families)):
        repeated = sorted({family_id for family_id in families if families.count(family_id) > 1})
        if repeated:
            raise ValueError(f"{name} lists {', '.join(repeated)} more than once")
    both = sorted(set(train_families) & set(heldout_families))
    if both:
        raise ValueError(f"families cannot be both trained on and held out: {', '.join(both)}")

    splits: dict[str, list[PromptSpec]] = {split: [] for split in SPLITS}
    for family_id in train_families:
        splits["train"] += _specs_for(family_id, "train", selection, grids)
        splits["unseen"] += _specs_for(family_id, "unseen", selection, grids)
    for family_id in heldout_families:
        splits["heldout"] += _specs_for(family_id, "heldout", selection, grids)

    for split, specs in splits.items():
        _check_unique_ids(split, specs)
    train_ids = {spec.distribution_id for spec in splits["train"]}
    leaked = train_ids & {spec.distribution_id for spec in splits["unseen"]}
    if leaked:
        raise ValueError(f"unseen-parameter prompts also appear in train: {', '.join(sorted(leaked))}")
    return splits


# Shared value lists of the paper's config.
_BINOMIAL_P = (0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8)


def _location_scale(location: str, scale: str, selected: tuple[float, float]) -> dict[str, Points]:
    """The grids shared by gaussian, cauchy, laplace, logistic and gumbel (only the names differ)."""
    return dict(
        train=grid({location: lin(-2, 2, 11), scale: geo(0.5, 2, 11)}),
        unseen=grid({location: lin(2.5, 4, 6), scale: geo(2.25, 3.5, 6)}),
        selected=({location: selected[0], scale: selected[1]},),
    )


for _grids in (
    FamilyGrids(
        "uniform",
        train=grid({"a": lin(-5, 2, 11), "width": lin(1, 5, 11)}),
        unseen=grid({"a": lin(2.5, 4.5, 6), "width": lin(5.5, 8, 6)}),
        selected=({"a": 3.5, "width": 7.0},),
    ),
    FamilyGrids("gaussian", **_location_scale("mu", "sigma", (3.5, 3.0))),
    FamilyGrids(
        "bernoulli",
        ood=grid({"p": (0.1, 0.3, 0.5, 0.7, 0.9)}),
        ood_selected=({"p": 0.1}, {"p": 0.5}, {"p": 0.9}),
    ),
    FamilyGrids(
        "beta",
        train=grid({"alpha": geo(0.5, 5, 11), "beta": geo(0.5, 5, 11)}),
        unseen=grid({"alpha": geo(5.5, 8, 6), "beta": geo(5.5, 8, 6)}),
        selected=({"alpha": 7.0, "beta": 7.0},),
    ),
    FamilyGrids(
        "binomial",
        train=grid({"n": (5, 10, 15, 20), "p": _BINOMIAL_P}),
        unseen=grid({"n": (25, 30), "p": (0.25, 0.4, 0.5, 0.6, 0.75)}),
        selected=({"n": 25.0, "p": 0.5},),
    ),
    FamilyGrids(
        "poisson",
        ood=grid({"lambda": geo(1, 12, 17)}),
        ood_selected=({"lambda": 1.0}, {"lambda": 4.0}, {"lambda": 12.0}),
    ),
    FamilyGrids(
        "exponential",
        train=grid({"lambda": geo(0.5, 5, 25)}),
        unseen=grid({"lambda": geo(5.5, 8, 12)}),
        selected=({"lambda": 7.0},),
    ),
    FamilyGrids(
        "geometric",
        train=grid({"p": (0.2, 0.225, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.775, 0.8)}),
        unseen=grid({"p": (0.05, 0.075, 0.1, 0.125, 0.15, 0.85, 0.875, 0.9, 0.925, 0.95)}),
        selected=({"p": 0.125},),
    ),
    FamilyGrids(
        "negative_binomial",
        train=grid({"r": (3, 5, 8, 12), "p": _BINOMIAL_P}),
        unseen=grid({"r": (15, 20), "p": (0.1, 0.15, 0.2, 0.8, 0.85, 0.9)}),
        selected=({"r": 15.0, "p": 0.15},),
    ),
    FamilyGrids(
        "lognormal",
        train=grid({"mu": lin(-1, 1.5, 11), "sigma": geo(0.25, 1.25, 11)}),
        unseen=grid({"mu": lin(1.75, 3, 6), "sigma": geo(1.5, 2.25, 6)}),
        selected=({"mu": 2.5, "sigma": 2.0},),
    ),
    FamilyGrids(
        "triangular",
        train=grid({"a": lin(-3, 1, 5), "width": lin(1, 5, 5), "mode_fraction": (0.1, 0.3, 0.5, 0.7, 0.9)}),
        unseen=grid({"a": lin(1.5, 3.5, 3), "width": lin(5.5, 8, 3), "mode_fraction": (0.1, 0.5, 0.9)}),
        selected=({"a": 2.5, "width": 7.0, "mode_fraction": 0.5},),
    ),
    FamilyGrids(
        "rayleigh",
        train=grid({"sigma": geo(0.5, 2, 25)}),
        unseen=grid({"sigma": geo(2.25, 3.5, 12)}),
        selected=({"sigma": 3.0},),
    ),
    FamilyGrids(
        "maxwell",
        ood=grid({"scale": (0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 5)}),
        ood_selected=({"scale": 0.75}, {"scale": 1.5}, {"scale": 2.5}),
    ),
    FamilyGrids(
        "truncnorm",
        ood=grid({"mu": (0, 1), "sigma": (1, 1.5), "lower": (-2, -1), "upper": (1, 2)}),
        ood_selected=(
            {"mu": 0.0, "sigma": 1.0, "lower": -1.0, "upper": 1.0},
            {"mu": 0.0, "sigma": 1.0, "lower": -2.0, "upper": 2.0},
            {"mu": 1.0, "sigma": 1.5, "lower": -1.0, "upper": 2.0},
        ),
    ),
    FamilyGrids("cauchy", **_location_scale("x0", "gamma", (3.5, 3.0))),
    FamilyGrids(
        "student_t",
        train=grid({"nu": (2.5, 2.75, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9, 10)}),
        unseen=grid({"nu": (10.5, 12, 14, 16, 18, 20)}),
        selected=({"nu": 16.0},),
    ),
    FamilyGrids(
        "chi_square",
        train=grid({"nu": (2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 18, 20)}),
        unseen=grid({"nu": (21, 24, 28, 32, 36, 40)}),
        selected=({"nu": 32.0},),
    ),
    FamilyGrids(
        "f_distribution",
        train=grid({"d1": (3, 5, 7, 10), "d2": (5, 10, 15, 20)}),
        unseen=grid({"d1": (12, 15), "d2": (24, 30)}),
        selected=({"d1": 12.0, "d2": 24.0},),
    ),
    FamilyGrids(
        "gamma",
        train=grid({"alpha": geo(1, 5, 11), "beta": geo(1, 5, 11)}),
        unseen=grid({"alpha": geo(5.5, 8, 6), "beta": geo(5.5, 8, 6)}),
        selected=({"alpha": 7.0, "beta": 7.0},),
    ),
    FamilyGrids(
        "weibull",
        ood=grid({"k": geo(0.5, 3, 6), "lambda": geo(0.5, 3, 6)}),
        ood_selected=({"k": 0.5, "lambda": 0.5}, {"k": 1.5, "lambda": 1.5}, {"k": 3.0, "lambda": 3.0}),
    ),
    FamilyGrids("laplace", **_location_scale("mu", "b", (3.5, 3.0))),
    FamilyGrids("logistic", **_location_scale("mu", "s", (3.5, 3.0))),
    FamilyGrids(
        "pareto",
        train=grid({"alpha": (2, 2.25, 2.5, 2.75, 3, 3.5, 4, 4.5, 5), "xm": geo(0.5, 2, 11)}),
        unseen=grid({"alpha": (5.5, 6, 6.5, 7, 8), "xm": geo(2.5, 4, 6)}),
        selected=({"alpha": 6.5, "xm": 3.5},),
    ),
    FamilyGrids(
        "hypergeometric",
        train=grid({"M": (30, 50, 80), "N": (5, 10, 15), "success_fraction": (0.2, 0.35, 0.5, 0.65, 0.8)}),
        unseen=grid({"M": (100, 120), "N": (20, 25), "success_fraction": (0.2, 0.5, 0.8)}),
        selected=({"M": 100.0, "N": 20.0, "success_fraction": 0.5},),
    ),
    FamilyGrids("gumbel", **_location_scale("mu", "beta", (3.5, 3.0))),
    FamilyGrids(
        "skellam",
        train=grid({"mu1": geo(1, 8, 11), "mu2": geo(1, 8, 11)}),
        unseen=grid({"mu1": geo(8.5, 12, 6), "mu2": geo(8.5, 12, 6)}),
        selected=({"mu1": 10.5, "mu2": 10.5},),
    ),
    FamilyGrids(
        "beta_binomial",
        train=grid({"n": (10, 20, 30), "alpha": geo(0.5, 5, 5), "beta": geo(0.5, 5, 5)}),
        unseen=grid({"n": (40, 50), "alpha": geo(5.5, 8, 3), "beta": geo(5.5, 8, 3)}),
        selected=({"n": 40.0, "alpha": 6.5, "beta": 6.5},),
    ),
    FamilyGrids(
        "lomax",
        train=grid({"alpha": geo(1.5, 4, 11), "lambda": geo(0.5, 3, 11)}),
        unseen=grid({"alpha": geo(4.5, 7, 6), "lambda": geo(3.5, 5, 6)}),
        selected=({"alpha": 6.0, "lambda": 4.5},),
    ),
    FamilyGrids(
        "inverse_gaussian",
        train=grid({"mu": geo(0.5, 3, 11), "lambda": geo(0.5, 5, 11)}),
        unseen=grid({"mu": geo(3.5, 6, 6), "lambda": geo(5.5, 8, 6)}),
        selected=({"mu": 5.0, "lambda": 7.0},),
    ),
    FamilyGrids(
        "chi",
        ood=grid({"df": (1.5, 2, 3, 4, 5, 7, 10, 14, 20)}),
        ood_selected=({"df": 2.0}, {"df": 5.0}, {"df": 10.0}),
    ),
):
    register_grids(_grids)
del _grids

# The paper's partition, in registry order.
PAPER_HELDOUT_FAMILIES = ("bernoulli", "poisson", "maxwell", "truncnorm", "weibull", "chi")
PAPER_TRAIN_FAMILIES = tuple(
    family_id for family_id in PAPER_GRIDS if family_id not in PAPER_HELDOUT_FAMILIES
)
