"""Fidelity along training (`cft.evaluation.curve`): each exact metric against the optimizer step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cft.evaluation.comparisons import COMPARISON_METRICS
from cft.figures.style import METHOD_COLORS, MIN_FONT_PT, line_style, plain_log_ticks, plt, save_figure

METRIC_LABELS = {
    "digit_kl": "digit KL",
    "exact_w1_norm": "normalized W1 (exact)",
    "exact_trie_kl": "trie KL (exact)",
    "exact_valid_mass": "valid mass (exact)",
    "first_token_numeric_mass": "first-token digit or '-' mass",
}
SPLIT_TITLES = {"unseen": "unseen parameters", "heldout": "held-out families"}


def plot_fidelity_curve(curve_csv: str | Path, pdf_path: str | Path, png_path: str | Path, *,
                        note: str = "") -> None:
    """One row per metric, one column per model and split; a line per trained variant (family median
    with its 95% bootstrap band), base as a dashed horizontal line with its band."""
    table = pd.read_csv(curve_csv)
    metrics = [m for m in METRIC_LABELS if m in set(table["metric"])]
    panels = list(dict.fromkeys(zip(table["model"], table["split"])))
    fig, axes = plt.subplots(len(metrics), len(panels), figsize=(4.2 * len(panels), 2.3 * len(metrics)),
                             squeeze=False, sharex="col")
    for c, (model, split) in enumerate(panels):
        part = table[(table["model"] == model) & (table["split"] == split)]
        for r, metric in enumerate(metrics):
            ax = axes[r][c]
            rows = part[part["metric"] == metric]
            base = rows[rows["variant"] == "base"]
            if not base.empty and np.isfinite(base["median"].iloc[0]):
                ax.axhline(base["median"].iloc[0], color=METHOD_COLORS["base"], linestyle="--", label="base")
                ax.axhspan(base["median_ci_low"].iloc[0], base["median_ci_high"].iloc[0],
                           color=METHOD_COLORS["base"], alpha=0.12)
            for variant, line in rows[rows["variant"] != "base"].groupby("variant", sort=True):
                line = line.sort_values("step")
                # An ablation variant has no style of its own: the default colour cycle, round marks.
                style = line_style(variant) if variant in METHOD_COLORS else {"marker": "o"}
                color = style.get("color")
                ax.plot(line["step"], line["median"], markersize=4, label=variant, **style)
                ax.fill_between(line["step"], line["median_ci_low"], line["median_ci_high"], color=color, alpha=0.15)
            if COMPARISON_METRICS[metric] == "lower":
                ax.set_yscale("log")
                plain_log_ticks(ax.yaxis)
            ax.set_ylabel(METRIC_LABELS[metric], fontsize=8)
            if r == 0:
                ax.set_title(f"{model}: {SPLIT_TITLES.get(split, split)}", fontsize=9)
                ax.legend(fontsize=MIN_FONT_PT)
            if r == len(metrics) - 1:
                ax.set_xlabel("optimizer step")
    fig.suptitle("Exact fidelity along training: family medians,\n95% bootstrap bands over families and prompts"
                 f"\n(KL and W1: lower is better; masses: higher){note}", fontsize=8)
    fig.tight_layout()
    save_figure(fig, pdf_path, png_path)
