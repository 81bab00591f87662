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
