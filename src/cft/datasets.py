"""Split datasets on disk: one JSON line per prompt with its parameters and discretized target.

A row holds everything needed to rebuild the prompt (`spec`), what people read (`prompt`,
`distribution_id`, family metadata, true support) and the output space (canonical strings and masses)
of the evaluations' target (the config's `evaluate.target`, the soft adapter's) with its settings, so
a dataset file can be inspected or consumed without the package.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cft.grids import build_splits
from cft.io import read_jsonl, write_jsonl
from cft.prompts import PromptSpec
from cft.targets import TargetSettings

log = logging.getLogger(__name__)


def dataset_row(split: str, spec: PromptSpec, target: TargetSettings) -> dict[str, Any]:
    """One prompt with its target under `target` (the config's evaluate.target, the soft adapter's)."""
    family = spec.family
    lower, upper = family.support(spec.param_dict)
    space = target.space(spec)
    return {
        "split": split,
        "distribution_id": spec.distribution_id,
        "family_id": family.family_id,
        "display_name": family.display_name,
        "tier": family.tier,
        "kind": family.kind,
        "parameters": spec.param_dict,
        "support": [lower, upper],
        "prompt": spec.prompt,
        "spec": spec.to_dict(),
        "output_space": {
            **target.to_dict(),
            "values": list(space.values),
            "probs": [float(p) for p in space.probs],
        },
    }


def write_split(*, split: str, out_path: str | Path, train_families: Sequence[str],
                heldout_families: Sequence[str], selection: str,
                target: TargetSettings | Mapping[str, Any]) -> int:
    """Write one split of the paper's prompts with their targets under `target`; return the row count."""
    target = TargetSettings.of(target)
    specs = build_splits(train_families, heldout_families, selection)[split]
    rows = [
        dataset_row(split, spec, target)
        for spec in specs
    ]
    write_jsonl(out_path, rows)
    log.info("wrote %d %s prompts to %s", len(rows), split, out_path)
    return len(rows)


def read_specs(path: str | Path) -> list[PromptSpec]:
    return [PromptSpec.from_dict(row["spec"]) for row in read_jsonl(path)]


def family_balanced_subset(rows: Sequence[dict[str, Any]], size: int | None, seed: int) -> list[dict[str, Any]]:
    """Pick `size` rows spread as evenly as possible over families, in a seeded, reproducible way.

    Each family's rows are permuted with its own generator; families then take turns (alphabetical order)
    giving one row each, so a subset of 240 over 24 families holds 10 prompts of each.
    """
    if size is None or size >= len(rows):
        return list(rows)
    by_family: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_family[row["family_id"]].append(row)
    queues = {}
    for index, family_id in enumerate(sorted(by_family)):
        members = by_family[family_id]
        order = np.random.default_rng([seed, index]).permutation(len(members))
        queues[family_id] = [members[i] for i in order]
    subset: list[dict[str, Any]] = []
    while len(subset) < size:
        for family_id in sorted(queues):
            if queues[family_id] and len(subset) < size:
                subset.append(queues[family_id].pop(0))
    return subset


def write_train_subset(train_path: str | Path, out_path: str | Path, *, size: int | None, seed: int) -> int:
    rows = family_balanced_subset(read_jsonl(train_path), size, seed)
    write_jsonl(out_path, rows)
    log.info("selected %d training prompts from %s", len(rows), train_path)
    return len(rows)
