"""Transfer figures: open-ended support size and unique rate, the weekday/city case studies, the exact
answer probabilities on closed answer sets, and the answer-position balance of generated MCQs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cft.figures.fidelity import _color, _variant_order
from cft.figures.style import OKABE_ITO, bar_style, line_style, plt, save_figure
from cft.io import read_jsonl
from cft.transfer.mcq import LETTERS

# Okabe-Ito colours (cft.figures.style) for the answer letters, told apart under colour-vision deficiency.
LETTER_COLORS = {"A": OKABE_ITO["blue"], "B": OKABE_ITO["orange"], "C": OKABE_ITO["bluish_green"],
                 "D": OKABE_ITO["reddish_purple"]}
LETTER_HATCHES = {"A": "", "B": "//", "C": "..", "D": "xx"}


def _grouped_bars(ax, summary: pd.DataFrame, models: list[str], variants: list[str], column: str) -> None:
    """One bar per (model, variant) of ``column``; a missing value is marked n/a instead of a bar."""
    width = 0.8 / len(variants)
    for k, variant in enumerate(variants):
        values = (summary[summary["variant"] == variant].set_index("model").reindex(models)[column]
                  .to_numpy(dtype=float))
        x = np.arange(len(models)) + (k - (len(variants) - 1) / 2) * width
        ax.bar(x, values, width, **bar_style(variant), label=variant)
        for position in x[~np.isfinite(values)]:
            ax.text(position, 0.02, f"{variant}: n/a", rotation=90, fontsize=8, ha="center", va="bottom",
                    transform=ax.get_xaxis_transform())
    ax.set_xlim(-0.5, len(models) - 0.5)  # every slot kept, so that an n/a mark stays inside the axes
    ax.set_xticks(np.arange(len(models)), models, fontsize=8)


def plot_openended_support(summary_csv: str | Path, pdf_path: str | Path, png_path: str | Path, *,
                           headline: float = 0.9, note: str = "") -> None:
    """Mean first-token support size against the threshold (one line per model and variant), the
    headline support size and the unique output rate per model and variant."""
    summary = pd.read_csv(summary_csv)
    models = list(dict.fromkeys(summary["model"]))
    variants = _variant_order(summary["variant"].unique())
    threshold_columns = sorted(
        (c for c in summary.columns if c.startswith("support_p") and c.endswith("_mean")),
        key=lambda c: float(c.removeprefix("support_p").removesuffix("_mean").replace("p", ".")),
    )
    thresholds = [float(c.removeprefix("support_p").removesuffix("_mean").replace("p", "."))
                  for c in threshold_columns]
    markers = "osD^v<>px*h"

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for _, row in summary.iterrows():
        # The variant by colour and line style, the model by marker.
        style = line_style(row["variant"])
        axes[0].plot(thresholds, row[threshold_columns].to_numpy(dtype=float), color=style.get("color"),
                     linestyle=style.get("linestyle"), marker=markers[models.index(row["model"]) % len(markers)],
                     markersize=3,
                     label=f"{row['model']} {row['variant']}")
    # A prompting variant (SSoT) has no support size; with only such rows there is nothing to log-scale.
    has_support = bool(np.isfinite(summary[threshold_columns].to_numpy(dtype=float)).any())
    if has_support:
        axes[0].set_yscale("log")
    axes[0].set_xlabel("probability mass threshold t")
    axes[0].set_ylabel("mean support size [tokens]")
    axes[0].set_title("First-token support size vs. threshold", fontsize=9)
    axes[0].legend(fontsize=8)

    _grouped_bars(axes[1], summary, models, variants, "support_size_mean")
    if has_support:
        axes[1].set_yscale("log")
    axes[1].set_ylabel(f"mean support size at t={headline:g} [tokens]")
    axes[1].set_title(f"Support size (t={headline:g}; higher = more spread)", fontsize=9)
    axes[1].legend(fontsize=8, title="variant", title_fontsize=8)

    _grouped_bars(axes[2], summary, models, variants, "unique_rate_mean")
    axes[2].set_ylim(0, 1.05)
    axes[2].set_ylabel("unique output rate (mean over prompts)")
    n_samples = ", ".join(str(n) for n in sorted(summary["num_samples"].unique()))
    axes[2].set_title(f"Unique output rate ({n_samples} samples per prompt)", fontsize=9)
    fig.suptitle(f"Open-ended random generation over {int(summary['num_prompts'].max())} prompts{note}",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, pdf_path, png_path)


def case_study_shares(samples: pd.DataFrame, category: str, *, top: int = 8) -> pd.DataFrame:
    """Answer shares (canonical answers, all samples in the denominator) of one category: one column per
    variant, rows = the ``top`` answers most frequent in any variant, then "(other)" and "(empty)"."""
    part = samples[samples["category"] == category]
    shares = {}
    for variant, group in part.groupby("variant", sort=False):
        counts = Counter(group["canonical_answer"])
        empty = counts.pop("", 0)
        shares[variant] = pd.Series(counts, dtype=float) / len(group)
        shares[variant]["(empty)"] = empty / len(group)
    table = pd.DataFrame(shares).fillna(0.0)
    answers = table.drop(index="(empty)").max(axis=1).sort_values(ascending=False, kind="stable")
    keep = list(answers.index[:top])
    other = table.drop(index=[*keep, "(empty)"]).sum(axis=0)
    return pd.concat([table.loc[keep], other.to_frame("(other)").T, table.loc[["(empty)"]]])


def plot_openended_case_studies(samples_jsonls: Sequence[str | Path], categories: Sequence[str],
                                pdf_path: str | Path, png_path: str | Path, *, top: int = 8,
                                note: str = "") -> None:
    """For each model (rows) and case-study category (columns), the shares of the most frequent
    answers under the base model and each trained variant."""
    samples = pd.DataFrame([row for path in samples_jsonls for row in read_jsonl(path)])
    models = list(dict.fromkeys(samples["model"]))
    fig, axes = plt.subplots(len(models), len(categories),
                             figsize=(5.2 * len(categories), 0.35 * (top + 2) * 3 * len(models) / 2 + 1.2),
                             squeeze=False)
    for row, model in enumerate(models):
        for col, category in enumerate(categories):
            ax = axes[row][col]
            if not ((samples["model"] == model) & (samples["category"] == category)).any():
                ax.text(0.5, 0.5, f"'{category}' not evaluated\n(evaluate.openended.max_prompts)",
                        ha="center", va="center", transform=ax.transAxes, fontsize=8)
                ax.set_axis_off()
                continue
            shares = case_study_shares(samples[samples["model"] == model], category, top=top)
            variants = _variant_order(list(shares.columns))
            height = 0.8 / len(variants)
            y = np.arange(len(shares))
            for k, variant in enumerate(variants):
                ax.barh(y + (k - (len(variants) - 1) / 2) * height, shares[variant].to_numpy(), height,
                        **bar_style(variant), label=variant)
            labels = [label if len(label) <= 28 else label[:27] + "…" for label in shares.index]
            ax.set_yticks(y, labels, fontsize=8)
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            ax.set_xlabel("share of samples")
            n = int((samples[(samples["model"] == model) & (samples["category"] == category)]
                     .groupby("variant").size().max()))
            ax.set_title(f"{model}: a random {category} ({n} samples per variant)", fontsize=9)
            if row == 0 and col == len(categories) - 1:
                ax.legend(fontsize=8, title="variant", title_fontsize=8)
    fig.suptitle(f"Case studies: answer shares (casefolded, punctuation trimmed){note}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, pdf_path, png_path)


def plot_openended_choices(choices_csv: str | Path, pdf_path: str | Path, png_path: str | Path, *,
                           note: str = "") -> None:
    """One panel per model and closed answer set: each variant's exact share of every answer (its
    probability over the set's mass); the legend gives the set's mass and the normalized entropy of
    the shares. A rank-preserving variant keeps base's order of the answers' first tokens."""
    table = pd.read_csv(choices_csv)
    panels = list(dict.fromkeys(zip(table["model"], table["category"])))
    most_answers = int(table.groupby(["model", "category"])["answer"].nunique().max())
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, figsize=(max(8.0, 1.0 * most_answers) + 3.2,
                                                                      3.4 * len(panels)))
    for ax, (model, category) in zip(axes[:, 0], panels):
        part = table[(table["model"] == model) & (table["category"] == category)]
        answers = list(dict.fromkeys(part["answer"]))
        variants = _variant_order(part["variant"].unique())
        width = 0.8 / len(variants)
        x = np.arange(len(answers))
        for k, variant in enumerate(variants):
            rows = part[part["variant"] == variant].set_index("answer").reindex(answers)
            ax.bar(x + (k - (len(variants) - 1) / 2) * width, rows["share"].to_numpy(dtype=float), width,
                   **bar_style(variant),
                   label=f"{variant} ({rows['set_mass'].iloc[0]:.3f}, {rows['normalized_entropy'].iloc[0]:.2f})")
        ax.axhline(1 / len(answers), color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks(x, answers, fontsize=8)
        ax.set_xlim(-0.5, len(answers) - 0.5)
        ax.set_ylabel("share of the set's probability", fontsize=8)
        ax.set_title(f"{model}: {part['prompt'].iloc[0]}", fontsize=9)
        ax.legend(fontsize=8, title="variant (mass on the set,\nnormalized entropy)", title_fontsize=8,
                  loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Exact answer probabilities on closed answer sets: the answer, then the end of the line, "
                 f"teacher-forced (dashed: uniform){note}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, pdf_path, png_path)


def plot_mcq_positions(summary_csv: str | Path, pdf_path: str | Path, png_path: str | Path, *,
                       note: str = "") -> None:
    """Shares of the declared correct letter among valid MCQs (stacked, one bar per model and variant,
    TV from uniform above it) and the valid rate beside them."""
    summary = pd.read_csv(summary_csv)
    models = list(dict.fromkeys(summary["model"]))
    variants = _variant_order(summary["variant"].unique())
    bars = [(model, variant) for model in models for variant in variants
            if ((summary["model"] == model) & (summary["variant"] == variant)).any()]
    indexed = summary.set_index(["model", "variant"])
    x = np.arange(len(bars))
    labels = [f"{model}\n{variant}" for model, variant in bars]

    fig, (ax_shares, ax_valid) = plt.subplots(1, 2, figsize=(max(11, 1.1 * len(bars) + 4), 3.8),
                                              gridspec_kw={"width_ratios": [3, 1.2]})
    bottom = np.zeros(len(bars))
    for letter in LETTERS:
        shares = np.array([indexed.loc[bar, f"share_{letter}"] for bar in bars], dtype=float)
        ax_shares.bar(x, np.nan_to_num(shares), 0.7, bottom=bottom, color=LETTER_COLORS[letter],
                      hatch=LETTER_HATCHES[letter], edgecolor="white", label=letter)
        bottom += np.nan_to_num(shares)
    for position, bar in zip(x, bars):
        tv = float(indexed.loc[bar, "tv_from_uniform"])
        text = f"TV {tv:.2f}\nn={int(indexed.loc[bar, 'num_valid'])}" if np.isfinite(tv) else "no valid\nTV n/a"
        ax_shares.text(position, 1.02, text, ha="center", va="bottom", fontsize=8)
    ax_shares.axhline(0.25, color="black", linewidth=0.6, linestyle=":")
    ax_shares.axhline(0.5, color="black", linewidth=0.6, linestyle=":")
    ax_shares.axhline(0.75, color="black", linewidth=0.6, linestyle=":")
    ax_shares.set_ylim(0, 1.18)
    ax_shares.set_xticks(x, labels, fontsize=8)
    ax_shares.set_ylabel("share of valid MCQs")
    ax_shares.set_title("Declared correct answer position (dotted: uniform)", fontsize=9)
    ax_shares.legend(fontsize=8, title="answer", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))

    valid = np.array([indexed.loc[bar, "valid_rate"] for bar in bars], dtype=float)
    ax_valid.bar(x, valid, 0.7, color=[_color(variant) or "#999999" for _, variant in bars])
    for position, rate in zip(x, valid):
        ax_valid.text(position, rate + 0.01, f"{rate:.2f}", ha="center", va="bottom", fontsize=8)
    ax_valid.set_ylim(0, 1.05)
    ax_valid.set_xticks(x, labels, fontsize=8)
    ax_valid.set_ylabel("valid rate (strict format)")
    n_samples = ", ".join(str(n) for n in sorted(summary["num_samples"].unique()))
    ax_valid.set_title(f"Valid rate ({n_samples} generations)", fontsize=9)
    fig.suptitle(f"MCQ answer-position balance{note}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, pdf_path, png_path)
