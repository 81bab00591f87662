"""Paired comparisons (`cft.evaluation.comparisons`): the median ratio a / b per family with its
paired bootstrap interval, one row per pair and metric, one panel per model and split (or group)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cft.figures.style import MIN_FONT_PT, plain_log_ticks, plt, save_figure

GROUP_TITLES = {"unseen": "unseen parameters", "heldout": "held-out families", "seen": "seen (trained) prompts",
                "unseen_inside": "unseen, inside the training range", "unseen_outside": "unseen, outside it"}


def plot_comparisons(comparisons_csv: str | Path, pdf_path: str | Path, png_path: str | Path, *,
                     title: str = "Paired comparisons over families", group_column: str = "split",
                     note: str = "") -> None:
    """Median over families of a / b (log scale) with its 95% paired bootstrap interval; filled marks
    are significant at p < 0.05 (two-sided Wilcoxon, unadjusted), hollow ones are not. The right
    margin gives p and the families where a is better. Rows without a ratio (a reference value not
    positive, or no paired family) are listed as n/a."""
    table = pd.read_csv(comparisons_csv)
    models = list(dict.fromkeys(table["model"]))
    groups = list(dict.fromkeys(table[group_column]))
    rows = list(dict.fromkeys(zip(table["variant_a"], table["variant_b"], table["metric"])))
    fig, axes = plt.subplots(len(models), len(groups), figsize=(6.8 * len(groups), 0.3 * len(rows) + 1.8),
                             squeeze=False)
    for r, model in enumerate(models):
        for c, group in enumerate(groups):
            ax = axes[r][c]
            part = table[(table["model"] == model) & (table[group_column] == group)].set_index(
                ["variant_a", "variant_b", "metric"])
            for y, key in enumerate(rows):
                if key not in part.index or not np.isfinite(part.loc[key, "median_ratio"]):
                    ax.text(1, y, "n/a", ha="center", va="center", fontsize=MIN_FONT_PT, color="0.5")
                    continue
                row = part.loc[key]
                significant = row["p_value"] < 0.05
                color = "#1f77b4" if (row["n_a_better"] >= row["n_b_better"]) else "#d62728"
                ax.plot([row["median_ratio_ci_low"], row["median_ratio_ci_high"]], [y, y], color=color, linewidth=1.2)
                ax.plot(row["median_ratio"], y, "o", color=color, markersize=4,
                        markerfacecolor=color if significant else "white")
                ax.annotate(f"p={row['p_value']:.2g}, {int(row['n_a_better'])}/{int(row['n_families'])}",
                            xy=(1.0, y), xycoords=("axes fraction", "data"), xytext=(3, 0),
                            textcoords="offset points", va="center", fontsize=MIN_FONT_PT)
            ax.axvline(1.0, color="black", linewidth=0.8)
            ax.set_xscale("log")
            plain_log_ticks(ax.xaxis)
            ax.set_yticks(range(len(rows)), [f"{a} / {b}: {metric}" for a, b, metric in rows], fontsize=MIN_FONT_PT)
            ax.set_ylim(len(rows) - 0.5, -0.5)
            ax.set_xlabel("median over families of a / b (95% paired bootstrap CI)", fontsize=8)
            ax.set_title(f"{model}: {GROUP_TITLES.get(group, group)}", fontsize=9)
    fig.suptitle(f"{title}. Filled: p < 0.05 (two-sided Wilcoxon over families, unadjusted);\n"
                 f"blue: a better on more families, red: b; right: p, families where a is better / paired "
                 f"families{note}", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    save_figure(fig, pdf_path, png_path)
