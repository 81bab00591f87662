"""NoveltyBench figure: distinct classes and utility per model and variant, one row per prompt set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cft.figures.fidelity import _variant_order
from cft.figures.style import bar_style, plt, save_figure

PANELS = [("mean_distinct", "mean distinct classes (of k)"), ("mean_utility", "mean utility (0-10, p=0.8)")]


def judges_note(summary: pd.DataFrame) -> str:
    """A title line naming the judges, with a stand-in warning when any result used one."""
    judges = sorted({f"{row.classifier} / {row.reward}" for row in summary.itertuples()})
    line = "judges: " + "; ".join(judges)
    if summary["stand_in"].astype(bool).any():
        line += ("\nSTAND-IN judges (offline), not NoveltyBench's DeBERTa classifier and Skywork reward "
                 "model: not comparable with the published leaderboard")
    return line


def plot_noveltybench(summary_csv: str | Path, pdf_path: str | Path, png_path: str | Path, *,
                      note: str = "") -> None:
    summary = pd.read_csv(summary_csv)
    models = list(dict.fromkeys(summary["model"]))
    variants = _variant_order(summary["variant"].unique())
    prompt_sets = list(dict.fromkeys(summary["prompt_set"]))
    fig, axes = plt.subplots(len(prompt_sets), len(PANELS), figsize=(5 * len(PANELS), 3 * len(prompt_sets)),
                             squeeze=False)
    width = 0.8 / len(variants)
    for row, prompt_set in enumerate(prompt_sets):
        subset = summary[summary["prompt_set"] == prompt_set]
        for col, (column, label) in enumerate(PANELS):
            ax = axes[row, col]
            for k, variant in enumerate(variants):
                values = (subset[subset["variant"] == variant].set_index("model").reindex(models)[column]
                          .to_numpy(dtype=float))
                x = np.arange(len(models)) + (k - (len(variants) - 1) / 2) * width
                ax.bar(x, values, width, **bar_style(variant), label=variant)
            ax.set_xticks(np.arange(len(models)), models, fontsize=8)
            ax.set_xlabel("model")
            ax.set_ylabel(label)
            num_prompts = int(subset["num_prompts"].max()) if len(subset) else 0
            k_value = int(subset["k"].max()) if len(subset) else 0
            ax.set_title(f"nb-{prompt_set} ({num_prompts} prompts, k={k_value})", fontsize=9)
            ax.set_ylim(0, 1.08 * (k_value if column == "mean_distinct" and k_value else 10))
    axes[0, -1].legend(fontsize=8, title="variant", title_fontsize=8, loc="lower right", framealpha=0.9)
    fig.suptitle("NoveltyBench: distinct answers and utility\n" + judges_note(summary) + note, fontsize=8)
    fig.tight_layout()
    save_figure(fig, pdf_path, png_path)
