"""Fidelity tables and figures from per-prompt rows: NaN/inf never reach a summary."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cft.evaluation.fidelity import fidelity_tables, prompt_key
from cft.figures.fidelity import plot_fidelity_heatmap, plot_fidelity_summary, plot_valid_rate


def make_prompt_rows(variant: str, scale: float, with_gaps: bool) -> pd.DataFrame:
    rows = []
    for split, families in (("unseen", ["gaussian", "binomial", "cauchy"]), ("heldout", ["poisson", "chi"])):
        for family in families:
            for k in range(2):
                rows.append({
                    "model": "m", "variant": variant, "split": split, "family_id": family,
                    "kind": "discrete" if family in ("binomial", "poisson") else "continuous",
                    "distribution_id": f"{family}_{k}",
                    "w1_norm": scale * (1 + k), "exact_w1_norm": scale * (2 + k),
                    "trie_kl": scale, "exact_trie_kl": scale * 1.1, "digit_kl": scale * 3,
                    "valid_rate": 0.5, "exact_valid_mass": 0.25,
                    "mean_error": math.nan if family == "cauchy" else scale,
                })
    frame = pd.DataFrame(rows)
    if with_gaps:
        frame.loc[0, "w1_norm"] = math.inf
        frame.loc[1, "w1_norm"] = None
    return frame


@pytest.fixture()
def tables(tmp_path):
    paths = []
    for variant, scale in (("base", 2.0), ("soft", 0.5), ("hard", 0.7)):
        path = tmp_path / f"{variant}.csv"
        make_prompt_rows(variant, scale, with_gaps=variant == "base").to_csv(path, index=False)
        paths.append(path)
    summary = fidelity_tables(paths, tmp_path / "prompts.csv", tmp_path / "summary.csv", n_boot=200, seed=1)
    return tmp_path, summary


def test_summary_columns_and_values(tables):
    _, summary = tables
    assert len(summary) == 6
    required = ["family_median_w1_norm", "family_median_exact_w1_norm", "family_median_trie_kl",
                "family_median_exact_trie_kl", "family_median_digit_kl", "valid_rate", "exact_valid_mass"]
    assert set(required) <= set(summary.columns)
    soft_unseen = summary[(summary.variant == "soft") & (summary.split == "unseen")].iloc[0]
    # family means of exact_w1_norm: 0.5 * (2 + 3) / 2 = 1.25 for every family
    assert soft_unseen["family_median_exact_w1_norm"] == pytest.approx(1.25)
    assert soft_unseen["valid_rate"] == pytest.approx(0.5)


def test_nan_and_inf_never_reach_the_summary(tables):
    _, summary = tables
    numeric = summary.select_dtypes("number").drop(columns=[c for c in summary if "mean_error" in c])
    assert np.isfinite(numeric.to_numpy(dtype=float)).all()
    base_unseen = summary[(summary.variant == "base") & (summary.split == "unseen")].iloc[0]
    assert base_unseen["n_missing_w1_norm"] == 2
    # Cauchy has no mean: its family is skipped, not averaged as NaN.
    assert np.isfinite(base_unseen["family_median_mean_error"])


def test_prompt_key_is_stable_and_distinct():
    assert prompt_key("unseen", "gaussian_mu_3p5_sigma_3") == prompt_key("unseen", "gaussian_mu_3p5_sigma_3")
    assert prompt_key("unseen", "a") != prompt_key("heldout", "a")


def test_figures_render_without_timestamps(tables):
    folder, _ = tables
    for plot, source in ((plot_fidelity_summary, "summary.csv"), (plot_valid_rate, "summary.csv"),
                         (plot_fidelity_heatmap, "prompts.csv")):
        outputs = []
        for run in range(2):
            pdf, png = folder / f"{plot.__name__}{run}.pdf", folder / f"{plot.__name__}{run}.png"
            plot(folder / source, pdf, png, note="\nstand-in")
            outputs.append((pdf.read_bytes(), png.read_bytes()))
        assert outputs[0] == outputs[1], f"{plot.__name__} is not byte-reproducible"
        assert outputs[0][1][:8] == b"\x89PNG\r\n\x1a\n"


def test_bootstrap_w1_resamples_the_answers():
    from scipy import stats

    from cft.evaluation.metrics import bootstrap_w1, w1_to_target

    dist = stats.norm(0, 1)
    values = np.random.default_rng(0).normal(0.3, 1, size=200)
    replicates = bootstrap_w1(values, dist, n_boot=400, rng=np.random.default_rng(1))
    assert replicates.shape == (400,)
    point = w1_to_target(values, dist)
    # The replicates scatter around the point estimate with the noise of 200 answers.
    assert abs(np.median(replicates) - point) < 0.1
    assert 0.01 < replicates.std() < 0.2
    again = bootstrap_w1(values, dist, n_boot=400, rng=np.random.default_rng(1))
    assert np.array_equal(replicates, again)


def test_sample_replicates_widen_the_interval():
    from cft.evaluation.aggregate import summarize

    table = pd.DataFrame({"model": "m", "variant": "v", "split": "s",
                          "family_id": [f"f{i}" for i in range(4) for _ in range(3)], "w1": 1.0})
    without = summarize(table, ["w1"], n_boot=300, seed=2).iloc[0]
    assert without["median_ci_low"] == without["median_ci_high"] == 1.0
    noisy = 1.0 + np.random.default_rng(3).normal(0, 0.2, size=(len(table), 300))
    noisy[0] = np.nan  # a prompt without replicates keeps its point value
    with_samples = summarize(table, ["w1"], n_boot=300, seed=2, replicates={"w1": noisy}).iloc[0]
    assert with_samples["median"] == 1.0
    assert with_samples["median_ci_low"] < 1.0 < with_samples["median_ci_high"]
    with pytest.raises(ValueError, match="n_boot"):
        summarize(table, ["w1"], n_boot=100, seed=2, replicates={"w1": noisy})


def test_fidelity_tables_bootstrap_over_samples(tmp_path):
    """With the raw answers, the sampled W1 intervals include the noise of the finite sample."""
    from cft.evaluation.metrics import sample_metrics
    from cft.evaluation.parsing import parse_sample
    from cft.io import write_jsonl
    from cft.prompts import PromptSpec

    rng = np.random.default_rng(5)
    specs = [PromptSpec.from_params(family, params) for family, params in
             (("gaussian", {"mu": 0.0, "sigma": 1.0}), ("gaussian", {"mu": 2.0, "sigma": 3.0}),
              ("poisson", {"lambda": 4.0}))]
    write_jsonl(tmp_path / "unseen.jsonl", [{"spec": spec.to_dict()} for spec in specs])
    rows, answers = [], []
    for spec in specs:
        dist = spec.family.distribution(spec.param_dict)
        draws = dist.rvs(size=30, random_state=rng) + 0.3
        parsed = [parse_sample(str(round(float(x))) if spec.family.integer_only else f"{x:.3f}",
                               spec.family.support(spec.param_dict), spec.family.integer_only) for x in draws]
        record = sample_metrics(parsed, dist, discrete=spec.family.integer_only)
        record["w1_norm"] = record.pop("w1_normalized")
        rows.append({"model": "m", "variant": "base", "split": "unseen", "family_id": spec.family_id,
                     "distribution_id": spec.distribution_id, **record})
        answers += [{"model": "m", "variant": "base", "split": "unseen", "distribution_id": spec.distribution_id,
                     "parsed_value": p.value, "is_valid": p.is_valid} for p in parsed]
    pd.DataFrame(rows).to_csv(tmp_path / "base.csv", index=False)
    write_jsonl(tmp_path / "samples.jsonl", answers)

    points_only = fidelity_tables([tmp_path / "base.csv"], tmp_path / "p1.csv", tmp_path / "s1.csv",
                                  n_boot=300, seed=1).iloc[0]
    with_samples = fidelity_tables([tmp_path / "base.csv"], tmp_path / "p2.csv", tmp_path / "s2.csv",
                                   samples_jsonls=[tmp_path / "samples.jsonl"],
                                   test_sets=[tmp_path / "unseen.jsonl"], n_boot=300, seed=1).iloc[0]
    assert with_samples["family_median_w1_norm"] == points_only["family_median_w1_norm"]
    width = lambda row, m: row[f"family_mean_{m}_ci_high"] - row[f"family_mean_{m}_ci_low"]
    assert width(with_samples, "w1_norm") > width(points_only, "w1_norm")
    assert width(with_samples, "w1") > width(points_only, "w1")


def test_heatmap_falls_back_to_sampled_w1_without_exact_metrics(tables):
    folder, _ = tables
    sampled_only = pd.read_csv(folder / "prompts.csv").drop(columns=["exact_w1_norm"])
    sampled_only.to_csv(folder / "sampled_only.csv", index=False)
    plot_fidelity_heatmap(folder / "sampled_only.csv", folder / "h.pdf", folder / "h.png")
    assert (folder / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_prompt_per_family_still_gets_an_interval():
    """The unseen split has one prompt per family: the bootstrap must resample families too."""
    from cft.evaluation.aggregate import summarize

    table = pd.DataFrame({"model": "m", "variant": "v", "split": "unseen",
                          "family_id": [f"f{i}" for i in range(12)], "w1": np.linspace(0.5, 2.0, 12)})
    row = summarize(table, ["w1"], n_boot=500, seed=4).iloc[0]
    assert row["median"] == pytest.approx(1.25)
    assert row["median_ci_low"] < 1.25 < row["median_ci_high"]
    assert row["mean_ci_low"] < row["mean"] < row["mean_ci_high"]
