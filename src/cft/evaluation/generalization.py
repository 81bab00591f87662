"""Where the shape is learned: exact fidelity on seen prompts, and on unseen ones inside and outside
the training range.

The paper's unseen-parameter prompts are mostly extrapolations (Uniform(3.5, 10.5) after training on
bounds within [-5, 5]). To tell extrapolation apart from too few distinct training prompts or too small
a budget, each trained family contributes up to ``prompts_per_family`` prompts to three groups:

* ``seen``: prompts the adapters were trained on (drawn from the training subset);
* ``unseen_inside``: interpolations, prompts whose every parameter lies within the range [min, max]
  that parameter spans over the family's training prompts (the prompts actually trained on: the
  default's 240-prompt subset, not the 1988 it was drawn from), as the prompt states it (Uniform's a
  and b, not the grid's internal axes), and that are no training grid point. The paper's unseen grid
  has none: every one of its 591 prompts (`full_grid`) lies outside that range in at least one
  parameter of its family (Gaussian: training mu in [-2, 2], unseen mu in [2.5, 4]). So they are built
  from the training grid: on every grid axis the midpoints between neighbouring training values
  (rounded down for integer parameters, and left out where no integer lies between), combined as the
  grid combines its axes, materialized, and kept when valid and inside the range;
* ``unseen_outside``: prompts of the full unseen grid (all of them lie outside).

Prompts are drawn per family with a generator seeded by (seed, family index, group), so each group's
choice does not depend on the others. Every variant is scored exactly, without sampling, by the same
code as the test splits (`cft.evaluation.fidelity.evaluate_fidelity`), and the groups are compared with
the paired comparisons of `cft.evaluation.comparisons` (group in place of split).
"""

from __future__ import annotations

import logging
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cft.datasets import dataset_row
from cft.evaluation.comparisons import comparison_pairs, compare_variants
from cft.evaluation.fidelity import FidelitySettings, evaluate_fidelity
from cft.families import InvalidParameters, get_family
from cft.grids import PAPER_GRIDS, build_splits, grid
from cft.io import read_jsonl, write_csv, write_jsonl
from cft.prompts import PromptSpec
from cft.targets import TargetSettings

log = logging.getLogger(__name__)

GROUPS = ("seen", "unseen_inside", "unseen_outside")


def parameter_ranges(specs: Sequence[PromptSpec]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per family and prompt parameter, the [min, max] over the given (training) prompts."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for spec in specs:
        for name, value in spec.params:
            values[spec.family_id][name].append(float(value))
    return {family: {name: (min(v), max(v)) for name, v in params.items()} for family, params in values.items()}


def inside_range(spec: PromptSpec, ranges: Mapping[str, Mapping[str, tuple[float, float]]]) -> bool:
    """Whether every parameter of the prompt lies within its family's training range."""
    family_ranges = ranges[spec.family_id]
    return all(family_ranges[name][0] <= value <= family_ranges[name][1] for name, value in spec.params)


def _midpoints(values: Sequence[float], integer: bool) -> list[float]:
    """The midpoints of neighbouring distinct values; for an integer axis the integer below each
    midpoint, where one lies strictly between the two values."""
    distinct = sorted(set(values))
    points = []
    for low, high in zip(distinct, distinct[1:]):
        middle = (low + high) / 2
        if integer:
            middle = float(np.floor(middle))
            if not low < middle < high:
                continue
        points.append(middle)
    return points


def interpolation_specs(family_id: str, train_points: Sequence[Mapping[str, float]]) -> list[PromptSpec]:
    """Prompts between the training grid's points (see the module docstring), before the range check;
    combinations the family rejects (a mode outside its bounds) are left out."""
    family = get_family(family_id)
    integer = {param.name for param in family.domains if param.integer}
    axes = {name: _midpoints([point[name] for point in train_points], name in integer)
            for name in family.grid_parameter_names}
    specs = []
    for point in grid(axes):
        try:
            specs.append(PromptSpec.from_grid(family, point))
        except InvalidParameters:
            continue
    return specs


def _draw(items: Sequence, count: int, seed: Sequence[int]) -> list:
    order = np.random.default_rng(list(seed)).permutation(len(items))
    return [items[i] for i in sorted(order[:count])]


def generalization_sets(train_specs: Sequence[PromptSpec], train_families: Sequence[str],
                        heldout_families: Sequence[str], *, prompts_per_family: int,
                        seed: int) -> dict[str, list[PromptSpec]]:
    """The prompts of each group (see the module docstring), family by family in config order."""
    if prompts_per_family < 1:
        raise ValueError(f"prompts_per_family must be at least 1, got {prompts_per_family}")
    ranges = parameter_ranges(train_specs)
    unseen = build_splits(train_families, heldout_families, "full_grid")["unseen"]
    groups: dict[str, list[PromptSpec]] = {group: [] for group in GROUPS}
    for index, family_id in enumerate(train_families):
        trained = [s for s in train_specs if s.family_id == family_id]
        if not trained:
            # A training subset smaller than the family count leaves some families out of training;
            # they have no training range, so they are left out of every group (and counted so).
            log.warning("%s has no training prompt (data.train_prompts is below the family count): "
                        "left out of every group", family_id)
            continue
        trained_ids = {s.distribution_id for s in trained}
        between = interpolation_specs(family_id, PAPER_GRIDS[family_id].train)
        pools = {
            "seen": trained,
            "unseen_inside": [s for s in between if inside_range(s, ranges) and s.distribution_id not in trained_ids],
            "unseen_outside": [s for s in unseen if s.family_id == family_id and not inside_range(s, ranges)],
        }
        for group_index, group in enumerate(GROUPS):
            groups[group] += _draw(pools[group], prompts_per_family, (seed, index, group_index))
        log.info("%s: %d seen, %d unseen inside and %d outside the training range to draw from", family_id,
                 *(len(pools[g]) for g in GROUPS))
        for group in GROUPS:
            if not pools[group]:
                # A family trained on a single value of a parameter has no interpolation: its row is
                # missing from that group, and the comparisons count the families that remain.
                log.warning("%s has no %s prompt (training range: %s)", family_id, group, ranges[family_id])
    return groups


def write_generalization_sets(*, train_prompts: str | Path, out_paths: Mapping[str, str | Path],
                              train_families: Sequence[str], heldout_families: Sequence[str],
                              prompts_per_family: int, seed: int,
                              target: TargetSettings | Mapping[str, Any]) -> dict[str, int]:
    """The `make_generalization_sets` rule: one dataset file per group, in the splits' row format."""
    target = TargetSettings.of(target)
    specs = [PromptSpec.from_dict(row["spec"]) for row in read_jsonl(train_prompts)]
    groups = generalization_sets(specs, train_families, heldout_families,
                                 prompts_per_family=prompts_per_family, seed=seed)
    for group, path in out_paths.items():
        write_jsonl(path, [dataset_row(group, spec, target) for spec in groups[group]])
    return {group: len(groups[group]) for group in out_paths}


def evaluate_generalization(*, test_sets: Mapping[str, str | Path], settings: FidelitySettings,
                            prompts_csv: str | Path, **variant) -> pd.DataFrame:
    """Score one (model, variant) exactly on the groups' prompts (the group is the `split` column)."""
    with tempfile.TemporaryDirectory() as scratch:
        return evaluate_fidelity(**variant, test_sets=test_sets, settings=replace(settings, num_samples=0, exact=True),
                                 prompts_csv=prompts_csv, samples_jsonl=Path(scratch) / "samples.jsonl",
                                 distributions_json=Path(scratch) / "distributions.json")


def generalization_table(prompt_csvs: Sequence[str | Path], out_csv: str | Path, *, variants: Sequence[str],
                         methods: Sequence[str], n_boot: int, seed: int) -> pd.DataFrame:
    """`fidelity_generalization.csv`: the paired comparisons of `cft.evaluation.comparisons` per group
    (column `group`), whose ``median_a`` / ``median_b`` are each variant's family medians there."""
    prompts = pd.concat([pd.read_csv(path) for path in prompt_csvs], ignore_index=True)
    table = compare_variants(prompts, comparison_pairs(variants, methods), n_boot=n_boot, seed=seed)
    table = table.rename(columns={"split": "group"})
    table["group"] = pd.Categorical(table["group"], categories=GROUPS, ordered=True)
    table = table.sort_values(["model", "group"], kind="stable")
    write_csv(out_csv, table)
    return table
