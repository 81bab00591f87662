"""Split datasets: paper sizes, byte-identical reruns, family-balanced subsets."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from cft.datasets import family_balanced_subset, read_specs, write_split, write_train_subset
from cft.grids import PAPER_HELDOUT_FAMILIES, PAPER_TRAIN_FAMILIES

SETTINGS = dict(train_families=list(PAPER_TRAIN_FAMILIES), heldout_families=list(PAPER_HELDOUT_FAMILIES),
                selection="paper_selected",
                target={"decimals": 5, "max_bins": 1001, "quantile_low": 0.001, "quantile_high": 0.999})


def test_heldout_split_rows_and_rerun_is_byte_identical(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert write_split(split="heldout", out_path=first, **SETTINGS) == 18
    write_split(split="heldout", out_path=second, **SETTINGS)
    assert first.read_bytes() == second.read_bytes()
    rows = [json.loads(line) for line in first.read_text().splitlines()]
    poisson_1 = next(r for r in rows if r["distribution_id"] == "poisson_lambda_1")
    assert poisson_1["output_space"]["values"] == ["0", "1", "2", "3", "4", "5"]
    assert abs(sum(poisson_1["output_space"]["probs"]) - 1) < 1e-12
    assert poisson_1["support"] == [0, None]
    assert [s.distribution_id for s in read_specs(first)] == [r["distribution_id"] for r in rows]


def test_unseen_split_has_one_prompt_per_train_family(tmp_path):
    path = tmp_path / "unseen.jsonl"
    assert write_split(split="unseen", out_path=path, **SETTINGS) == 24
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert Counter(r["family_id"] for r in rows) == Counter({f: 1 for f in PAPER_TRAIN_FAMILIES})
    gaussian = next(r for r in rows if r["family_id"] == "gaussian")
    assert len(gaussian["output_space"]["values"]) == 1001
    assert gaussian["output_space"]["values"][0] == "-5.77069"


def test_family_balanced_subset_is_balanced_and_seeded():
    rows = [{"family_id": f, "i": i} for f, n in (("a", 50), ("b", 7), ("c", 30)) for i in range(n)]
    subset = family_balanced_subset(rows, 30, seed=11)
    counts = Counter(r["family_id"] for r in subset)
    # Seven rounds of three, then the small family is exhausted and the others alternate.
    assert counts == {"a": 12, "b": 7, "c": 11}
    assert subset == family_balanced_subset(rows, 30, seed=11)
    assert subset != family_balanced_subset(rows, 30, seed=12)
    assert family_balanced_subset(rows, None, seed=11) == rows


def test_train_subset_file(tmp_path):
    train = tmp_path / "train.jsonl"
    rows = [{"family_id": f, "spec": {}, "n": i} for f in ("x", "y", "z") for i in range(10)]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "subset.jsonl"
    assert write_train_subset(train, out, size=9, seed=3) == 9
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert Counter(r["family_id"] for r in kept) == {"x": 3, "y": 3, "z": 3}
    assert np.unique([json.dumps(r) for r in kept]).size == 9
