"""Paired comparisons: known answers on synthetic prompts, and p-values recomputable with scipy alone."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cft.evaluation.comparisons import COMPARISON_METRICS, comparison_pairs, comparison_table, compare_variants

FAMILIES = [f"family_{i:02d}" for i in range(12)]


def prompt_rows(variant: str, values, *, split: str = "unseen", prompts_per_family: int = 2) -> list[dict]:
    """Rows of one variant: family i's prompt k has value values(i, k) on every comparison metric."""
    return [
        {"model": "m", "variant": variant, "split": split, "family_id": family,
         "distribution_id": f"{family}_{k}", **{metric: values(i, k) for metric in COMPARISON_METRICS}}
        for i, family in enumerate(FAMILIES) for k in range(prompts_per_family)
    ]


def base_value(i: int, k: int) -> float:
    return 1.0 + 0.3 * i + 0.1 * k


def test_a_variant_better_on_every_family_is_significant():
    # soft is 40% of base's W1 on every prompt: lower everywhere, and smaller ratio than 1.
    prompts = pd.DataFrame(prompt_rows("base", base_value)
                           + prompt_rows("soft", lambda i, k: 0.4 * base_value(i, k)))
    table = compare_variants(prompts, [("soft", "base")], metrics=["exact_w1_norm"], n_boot=300, seed=3)
    row = table.iloc[0]
    assert row["n_families"] == len(FAMILIES) and row["n_prompts"] == 2 * len(FAMILIES)
    assert row["p_value"] < 0.05
    assert row["median_ratio"] == pytest.approx(0.4)
    assert row["median_ratio_ci_high"] < 1
    assert row["median_diff"] < 0 and row["median_diff_ci_high"] < 0
    assert row["n_a_better"] == len(FAMILIES) and row["n_b_better"] == 0


def test_higher_is_better_metrics_count_the_higher_variant():
    prompts = pd.DataFrame(prompt_rows("base", lambda i, k: 0.01)
                           + prompt_rows("soft", lambda i, k: 0.9))
    row = compare_variants(prompts, [("soft", "base")], metrics=["exact_valid_mass"], n_boot=50).iloc[0]
    assert row["better"] == "higher" and row["n_a_better"] == len(FAMILIES)
    assert row["median_ratio"] == pytest.approx(90)


def test_identical_variants_give_p_one():
    prompts = pd.DataFrame(prompt_rows("base", base_value) + prompt_rows("soft", base_value))
    table = compare_variants(prompts, [("soft", "base")], n_boot=100, seed=0)
    assert len(table) == len(COMPARISON_METRICS)
    assert (table["p_value"] == 1.0).all() and (table["wilcoxon_stat"] == 0.0).all()
    assert (table["median_diff"] == 0).all() and (table["median_ratio"] == 1).all()
    assert (table["median_diff_ci_low"] == 0).all() and (table["median_diff_ci_high"] == 0).all()
    assert (table["n_a_better"] == 0).all() and (table["n_b_better"] == 0).all()


def test_missing_values_are_unpaired_and_a_variant_without_values_keeps_its_row():
    rows = prompt_rows("base", base_value) + prompt_rows("soft", lambda i, k: 0.5 * base_value(i, k))
    rows += prompt_rows("ssot", lambda i, k: None)
    prompts = pd.DataFrame(rows)
    # family_00 has no soft value at all, family_01 only on its second prompt
    prompts.loc[(prompts.variant == "soft") & (prompts.family_id == "family_00"), "digit_kl"] = math.inf
    prompts.loc[(prompts.variant == "soft") & (prompts.distribution_id == "family_01_0"), "digit_kl"] = None
    table = compare_variants(prompts, [("soft", "base"), ("ssot", "base")], metrics=["digit_kl"], n_boot=50)
    soft, ssot = table.iloc[0], table.iloc[1]
    assert soft["n_families"] == len(FAMILIES) - 1 and soft["n_prompts"] == 2 * len(FAMILIES) - 3
    assert ssot["n_families"] == 0 and math.isnan(ssot["p_value"])


def test_ratio_is_missing_when_the_reference_is_not_positive():
    prompts = pd.DataFrame(prompt_rows("base", lambda i, k: float(i)) + prompt_rows("soft", lambda i, k: i + 1.0))
    row = compare_variants(prompts, [("soft", "base")], metrics=["digit_kl"], n_boot=50).iloc[0]
    assert math.isnan(row["median_ratio"]) and row["median_diff"] == pytest.approx(1.0)


def test_comparison_pairs():
    variants = ["base", "soft", "hard", "fullsupport", "temperature"]
    assert comparison_pairs(variants, ["soft", "hard", "fullsupport"]) == [
        ("soft", "base"), ("hard", "base"), ("fullsupport", "base"), ("temperature", "base"),
        ("soft", "hard"), ("fullsupport", "soft"),
    ]
    assert comparison_pairs(["base", "hard"], ["hard"]) == [("hard", "base")]


def test_p_values_are_recomputable_from_the_prompts_csv_with_scipy(tmp_path):
    rng = np.random.default_rng(5)
    noisy = {variant: rng.lognormal(size=(len(FAMILIES), 3)) for variant in ("base", "soft", "hard")}
    rows = []
    for split in ("unseen", "heldout"):
        for variant, values in noisy.items():
            rows += prompt_rows(variant, lambda i, k: values[i, k] * (2 if split == "heldout" else 1),
                                split=split, prompts_per_family=3)
    prompts_csv, out_csv = tmp_path / "fidelity_prompts.csv", tmp_path / "fidelity_comparisons.csv"
    frame = pd.DataFrame(rows)
    # One family has no exact grid in any variant (as LogNormal(2.5, 2) on the unseen split).
    frame.loc[frame.family_id == "family_03", "digit_kl"] = None
    frame.to_csv(prompts_csv, index=False)
    table = comparison_table(str(prompts_csv), str(out_csv), variants=["base", "soft", "hard"],
                             methods=["soft", "hard"], n_boot=50, seed=11)
    assert len(table) == 2 * 3 * len(COMPARISON_METRICS)

    # The recomputation uses pandas and scipy only: family means, families with both values, two-sided
    # Wilcoxon.
    prompts = pd.read_csv(prompts_csv)
    for row in pd.read_csv(out_csv).itertuples():
        frame = prompts[prompts.split == row.split]
        paired = pd.concat({v: frame[frame.variant == v].groupby("family_id")[row.metric].mean()
                            for v in (row.variant_a, row.variant_b)}, axis=1).dropna()
        family = {v: paired[v] for v in (row.variant_a, row.variant_b)}
        assert row.n_families == len(paired) == len(FAMILIES) - (row.metric == "digit_kl")
        expected = stats.wilcoxon(family[row.variant_a], family[row.variant_b], alternative="two-sided")
        assert row.p_value == pytest.approx(expected.pvalue, rel=1e-8)  # the csv keeps 10 significant digits
        assert row.wilcoxon_stat == pytest.approx(expected.statistic)
        assert row.median_diff == pytest.approx(np.median(family[row.variant_a] - family[row.variant_b]))


def test_generalization_groups_are_seen_inside_and_outside_the_training_range():
    from cft.evaluation.generalization import generalization_sets, inside_range, parameter_ranges
    from cft.grids import build_splits

    families = ["gaussian", "binomial", "triangular"]
    train = build_splits(families, ["poisson"], "full_grid")["train"]
    subset = train[::7]
    groups = generalization_sets(subset, families, ["poisson"], prompts_per_family=2, seed=3)
    ranges = parameter_ranges(subset)
    train_ids = {s.distribution_id for s in train}
    assert [len(groups[g]) for g in ("seen", "unseen_inside", "unseen_outside")] == [6, 6, 6]
    assert {s.distribution_id for s in groups["seen"]} <= {s.distribution_id for s in subset}
    assert all(inside_range(s, ranges) and s.distribution_id not in train_ids for s in groups["unseen_inside"])
    assert not any(inside_range(s, ranges) for s in groups["unseen_outside"])
    binomial = [s for s in groups["unseen_inside"] if s.family_id == "binomial"]
    assert all(float(s.param_dict["n"]).is_integer() for s in binomial)
    again = generalization_sets(subset, families, ["poisson"], prompts_per_family=2, seed=3)
    untrained = generalization_sets(subset, [*families, "beta"], ["poisson"], prompts_per_family=2, seed=3)
    assert untrained["seen"] == groups["seen"]  # a family without training prompts is left out
    assert [s.distribution_id for s in again["unseen_inside"]] == [s.distribution_id for s in groups["unseen_inside"]]


def test_the_comparison_and_curve_figures_are_drawn_at_readable_sizes(tmp_path):
    """Both figures go through save_figure, which refuses text below 8 pt."""
    from cft.figures.comparisons import plot_comparisons
    from cft.figures.curve import plot_fidelity_curve

    prompts = pd.DataFrame(prompt_rows("base", base_value)
                           + prompt_rows("soft", lambda i, k: 0.4 * base_value(i, k))
                           + prompt_rows("hard", lambda i, k: 0.5 * base_value(i, k)))
    compare_variants(prompts, [("soft", "base"), ("hard", "base"), ("soft", "hard")], n_boot=50).to_csv(
        tmp_path / "comparisons.csv", index=False)
    plot_comparisons(tmp_path / "comparisons.csv", tmp_path / "c.pdf", tmp_path / "c.png")
    curve = pd.DataFrame([
        {"model": "m", "split": "unseen", "metric": metric, "variant": variant, "step": step,
         "median": value, "median_ci_low": 0.8 * value, "median_ci_high": 1.2 * value}
        for metric in COMPARISON_METRICS
        for variant, steps in (("base", [0]), ("soft", [0, 100, 200, 300]), ("soft_d2_b4096", [0, 50, 100]))
        for step in steps for value in [1.0 / (1 + step / 100)]
    ])
    curve.to_csv(tmp_path / "curve.csv", index=False)
    plot_fidelity_curve(tmp_path / "curve.csv", tmp_path / "f.pdf", tmp_path / "f.png")
    for name in ("c.pdf", "c.png", "f.pdf", "f.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_two_runs_of_the_same_variant_compare_on_the_prompts_both_scored(tmp_path):
    from cft.cli import main
    from cft.evaluation.comparisons import compare_runs

    # Run a is the default (its soft adapter); run b trained soft on other prompts and scored one
    # family fewer. The pair holds the 11 common families, and b is better on all of them.
    run_a = pd.DataFrame(prompt_rows("base", base_value) + prompt_rows("soft", base_value))
    run_b = pd.DataFrame([row for row in prompt_rows("soft", lambda i, k: 0.5 * base_value(i, k))
                          if row["family_id"] != FAMILIES[0]])
    table = compare_runs(run_a, run_b, variant_a="soft", variant_b="soft", label_a="default", label_b="distinct",
                         metrics=["exact_w1_norm"], n_boot=200)
    row = table.iloc[0]
    assert (row["variant_a"], row["variant_b"]) == ("default", "distinct")
    assert row["n_families"] == len(FAMILIES) - 1 and row["n_b_better"] == len(FAMILIES) - 1
    assert row["median_ratio"] == pytest.approx(2.0) and row["p_value"] < 0.05

    with pytest.raises(ValueError, match="no rows of variant 'hard'"):
        compare_runs(run_a, run_b, variant_a="hard", variant_b="soft", label_a="a", label_b="b")

    run_a.to_csv(tmp_path / "a.csv", index=False)
    run_b.to_csv(tmp_path / "b.csv", index=False)
    out = tmp_path / "runs.csv"
    assert main(["compare-runs", f"default={tmp_path / 'a.csv'}:soft", f"distinct={tmp_path / 'b.csv'}:soft",
                 "--bootstrap", "50", "--out", str(out)]) == 0
    written = pd.read_csv(out)
    assert len(written) == len(COMPARISON_METRICS)
    w1 = written[written["metric"] == "exact_w1_norm"].iloc[0]
    assert w1["p_value"] == pytest.approx(row["p_value"])
    assert main(["compare-runs", "default-no-variant", f"b={tmp_path / 'b.csv'}:soft"]) != 0
