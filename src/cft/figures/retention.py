"""Retention figures, drawn from results/tables/retention_{tasks,perplexity}.csv.

Each panel shows one task (or text slice) with a bar per model and variant; every non-base bar is
labelled with its difference to the same model's base, and stand-in data is named in the panel title.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cft.figures.fidelity import _variant_order
from cft.figures.style import bar_style, plt, save_figure


def _bars(ax, table: pd.DataFrame, value: str, delta: str, models: list[str], variants: list[str]) -> None:
    width = 0.8 / len(variants)
    for k, variant in enumerate(variants):
        part = table[table["variant"] == variant].set_index("model").reindex(models)
        values = part[value].to_numpy(dtype=float)
        x = np.arange(len(models)) + (k - (len(variants) - 1) / 2) * width
        ax.bar(x, np.nan_to_num(values), width, **bar_style(variant), label=variant)
        if variant == "base":
            continue
        for position, v, d in zip(x, values, part[delta].to_numpy(dtype=float), strict=True):
            if np.isfinite(v) and np.isfinite(d):
                ax.annotate(f"{d:+.3f}", (position, v), xytext=(0, 2), textcoords="offset points",
                            ha="center", va="bottom", fontsize=8, rotation=90)
    ax.set_xticks(np.arange(len(models)), models, fontsize=8)
    ax.set_xlabel("model", fontsize=8)
    ax.margins(y=0.25)


def plot_retention_tasks(table_csv: str | Path, pdf_path: str | Path, png_path: str | Path, *, note: str = "") -> None:
    """Task scores (top) and, for multiple-choice tasks, the ECE of the answer probabilities (bottom)."""
    table = pd.read_csv(table_csv)
    panels = list(dict.fromkeys(zip(table["task"], table["metric"], strict=True)))
    models = list(dict.fromkeys(table["model"]))
    variants = _variant_order(table["variant"].unique())
    fig, axes = plt.subplots(2, len(panels), figsize=(3.0 * len(panels) + 1.5, 6.0), squeeze=False)
    for col, (task, metric) in enumerate(panels):
        part = table[(table["task"] == task) & (table["metric"] == metric)]
        stand_in = bool(part["stand_in"].iloc[0])
        top, bottom = axes[0][col], axes[1][col]
        _bars(top, part, "accuracy", "delta_accuracy", models, variants)
        top.set_ylim(0.0, 1.1)              # scores and ECE live in [0, 1]; room for the labels
        top.set_title(f"{task}{' (stand-in)' if stand_in else ''}\n{metric}, n={int(part['num_items'].iloc[0])}",
                      fontsize=8)
        top.set_ylabel("score (Δ vs base above bars)" if col == 0 else "")
        if "ece" in part and part["ece"].notna().any():
            _bars(bottom, part, "ece", "delta_ece", models, variants)
            bottom.set_ylim(0.0, 1.1)
            bottom.set_ylabel("ECE, 15 bins" if col == 0 else "")
        else:
            bottom.set_axis_off()
    axes[0][-1].legend(fontsize=8, title="variant", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("Retention: task scores and confidence calibration" + note, fontsize=9)
    fig.tight_layout()
    save_figure(fig, pdf_path, png_path)


def plot_retention_perplexity(table_csv: str | Path, pdf_path: str | Path, png_path: str | Path, *,
                              note: str = "") -> None:
    """Bits per byte per text slice (and pooled), with each variant's difference to base."""
    table = pd.read_csv(table_csv)
    slices = list(dict.fromkeys(table["slice"]))
    models = list(dict.fromkeys(table["model"]))
    variants = _variant_order(table["variant"].unique())
    stand_in = bool(table["stand_in"].any())
    fig, axes = plt.subplots(1, len(slices), figsize=(3.0 * len(slices) + 1.5, 3.4), squeeze=False)
    for col, slice_name in enumerate(slices):
        ax = axes[0][col]
        part = table[table["slice"] == slice_name]
        _bars(ax, part, "bits_per_byte", "delta_bits_per_byte", models, variants)
        ax.set_ylim(bottom=0.0)
        ax.set_title(f"{slice_name}\n{int(part['num_tokens'].iloc[0])} tokens", fontsize=8)
        ax.set_ylabel("bits per byte (Δ vs base above bars)" if col == 0 else "")
    axes[0][-1].legend(fontsize=8, title="variant", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    source = "stand-in: public-domain Shakespeare in PALOMA's layout" if stand_in else "PALOMA"
    context = f"context {int(table['context_length'].iloc[0])}, stride {int(table['stride'].iloc[0])}"
    fig.suptitle(f"Retention: perplexity ({source}; {context})" + note, fontsize=9)
    fig.tight_layout()
    save_figure(fig, pdf_path, png_path)
