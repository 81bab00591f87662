"""Fidelity figures, all drawn from results/tables/fidelity_*.csv and the saved exact distributions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cft.figures.style import METHOD_COLORS, bar_style, line_style, plt, save_figure

SPLIT_TITLES = {"unseen": "unseen parameters", "heldout": "held-out families"}
SUMMARY_PANELS = [
    ("exact_w1_norm", "normalized W1, exact"),
    ("w1_norm", "normalized W1, sampled"),
    ("digit_kl", "digit KL, exact [nats]"),
    ("exact_trie_kl", "trie KL, exact [nats]"),
    ("trie_kl", "trie KL, 4-path estimate [nats]"),
]


def _variant_order(variants: Sequence[str]) -> list[str]:
    known = [v for v in METHOD_COLORS if v in set(variants)]
    return known + sorted(set(variants) - set(known))


def _color(variant: str) -> str | None:
    return METHOD_COLORS.get(variant)


def _every(points) -> int:
    """Marker spacing that keeps about a dozen markers on a line."""
    return max(1, len(points) // 12)


def plot_fidelity_summary(summary_csv: str | Path, pdf_path: str | Path, png_path: str | Path, *,
                          note: str = "") -> None:
    """Family-median metrics per model and variant for each split, with 95% bootstrap intervals."""
    summary = pd.read_csv(summary_csv)
    panels = [(m, label) for m, label in SUMMARY_PANELS if f"family_median_{m}" in summary]
    splits = [s for s in SPLIT_TITLES if s in set(summary["split"])]
    models = list(dict.fromkeys(summary["model"]))
    variants = _variant_order(summary["variant"].unique())
    fig, axes = plt.subplots(len(panels), len(splits), figsize=(4.8 * len(splits), 2.6 * len(panels)),
                             squeeze=False)
    width = 0.8 / len(variants)
    for row, (metric, label) in enumerate(panels):
        for col, split in enumerate(splits):
            ax = axes[row][col]
            for k, variant in enumerate(variants):
                part = summary[(summary["split"] == split) & (summary["variant"] == variant)]
                part = part.set_index("model").reindex(models)
                values = part[f"family_median_{metric}"].to_numpy(dtype=float)
                low = values - part[f"family_median_{metric}_ci_low"].to_numpy(dtype=float)
                high = part[f"family_median_{metric}_ci_high"].to_numpy(dtype=float) - values
                x = np.arange(len(models)) + (k - (len(variants) - 1) / 2) * width
                ax.bar(x, values, width, **bar_style(variant), label=variant,
                       yerr=np.vstack([low, high]), capsize=2, error_kw={"linewidth": 0.8})
                for position in x[~np.isfinite(values)]:
                    ax.text(position, 0.02, f"{variant}: n/a", rotation=90, fontsize=8, ha="center",
                            va="bottom", transform=ax.get_xaxis_transform())
            ax.set_yscale("log")
            # Keep every variant's slot, so that a missing bar's n/a mark stays inside the axes.
            ax.set_xlim(-0.5, len(models) - 0.5)
            ax.set_xticks(np.arange(len(models)), models, fontsize=8)
            ax.set_ylabel(f"family median\n{label}", fontsize=8)
            if row == 0:
                ax.set_title(SPLIT_TITLES[split])
            if row == 0 and col == len(splits) - 1:
                # Outside the axes: with nine variants a legend inside covers bars.
                ax.legend(fontsize=8, title="variant", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Structured-sampling fidelity (lower is better; bars: median over families, "
                 f"whiskers: 95% bootstrap CI; n/a: no family with 10 valid answers){note}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, pdf_path, png_path)


def plot_fidelity_heatmap(prompts_csv: str | Path, pdf_path: str | Path, png_path: str | Path, *,
                          metric: str | None = None, note: str = "") -> None:
    """Per-family mean of a metric (families x variants), one panel per model; log colour scale.

    The default metric is the exact normalized W1, or the sampled one when the run had exact
    evaluation switched off."""
    prompts = pd.read_csv(prompts_csv)
    if metric is None:
        has_exact = "exact_w1_norm" in prompts and prompts["exact_w1_norm"].notna().any()
        metric = "exact_w1_norm" if has_exact else "w1_norm"
    models = list(dict.fromkeys(prompts["model"]))
    variants = _variant_order(prompts["variant"].unique())
    family_order = (prompts[["split", "family_id"]].drop_duplicates()
                    .sort_values(["split", "family_id"], key=lambda s: s.map({"unseen": 0, "heldout": 1})
                                 if s.name == "split" else s))
    labels = [f"{f} ({'held-out' if s == 'heldout' else 'unseen'})" for s, f in family_order.itertuples(index=False)]
    fig, axes = plt.subplots(1, len(models), figsize=(1.3 * len(variants) + 3.2, 0.26 * len(labels) + 1.6),
                             squeeze=False)
    for ax, model in zip(axes[0], models):
        table = (prompts[prompts["model"] == model]
                 .groupby(["split", "family_id", "variant"])[metric].mean()
                 .unstack("variant").reindex(columns=variants))
        matrix = table.reindex(list(family_order.itertuples(index=False, name=None))).to_numpy(dtype=float)
        finite = matrix[np.isfinite(matrix) & (matrix > 0)]
        log_matrix = np.log10(np.where(matrix > 0, matrix, np.nan))
        vmin, vmax = (np.log10(finite.min()), np.log10(finite.max())) if finite.size else (0, 1)
        image = ax.imshow(log_matrix, aspect="auto", cmap="viridis_r", vmin=vmin, vmax=vmax)
        for (i, j), value in np.ndenumerate(matrix):
            text = "n/a" if not np.isfinite(value) else f"{value:.2g}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if np.isfinite(log_matrix[i, j]) and log_matrix[i, j] > (vmin + vmax) / 2 else "black")
        ax.set_xticks(range(len(variants)), variants)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_title(f"{model}: {metric} per family", fontsize=9)
        ax.grid(False)
        fig.colorbar(image, ax=ax, label=f"log10 {metric}")
    fig.suptitle(f"Per-family {metric} (mean over the family's prompts; lower is better){note}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, pdf_path, png_path)


def pick_overlay_prompts(prompts: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(title, split, distribution_id): one continuous and one discrete unseen prompt, one held-out."""
    chosen = []
    unseen = prompts[prompts["split"] == "unseen"]
    heldout = prompts[prompts["split"] == "heldout"]
    for title, pool, kind, preferred in (
        ("continuous, unseen parameters", unseen, "continuous", "gaussian"),
        ("discrete, unseen parameters", unseen, "discrete", "binomial"),
        ("held-out family", heldout, None, "poisson"),
    ):
        candidates = pool if kind is None else pool[pool["kind"] == kind]
        if candidates.empty:
            continue
        match = candidates[candidates["family_id"] == preferred]
        row = (match if not match.empty else candidates).iloc[0]
        chosen.append((title, row["split"], row["distribution_id"]))
    return chosen


def plot_fidelity_overlays(prompts_csv: str | Path, distributions: Mapping[tuple[str, str], str | Path],
                           pdf_path: str | Path, png_path: str | Path, *, note: str = "") -> None:
    """Target vs model: CDF over digit intervals (continuous) or PMF over the support (discrete).

    ``distributions`` maps (model, variant) to the exact distributions a fidelity job saved. The model
    curves are renormalized over the grid (its mass off the grid, reported as missing, is in the title).
    """
    prompts = pd.read_csv(prompts_csv)
    models = list(dict.fromkeys(prompts["model"]))
    loaded = {key: json.loads(Path(path).read_text()) for key, path in distributions.items()}
    picks = pick_overlay_prompts(prompts[prompts["model"] == models[0]])
    fig, axes = plt.subplots(len(models), len(picks), figsize=(4.8 * len(picks), 3.4 * len(models)),
                             squeeze=False)
    for r, model in enumerate(models):
        variants = _variant_order([v for m, v in loaded if m == model])
        for c, (title, split, distribution_id) in enumerate(picks):
            ax = axes[r][c]
            key = f"{split}/{distribution_id}"
            kind = prompts.loc[prompts["distribution_id"] == distribution_id, "kind"].iloc[0]
            target_drawn = False
            for variant in variants:
                grid = loaded[(model, variant)].get(key)
                if grid is None:
                    continue
                points = np.asarray(grid["points"])
                model_mass = np.asarray(grid["model_mass"])
                target = np.asarray(grid["target_mass"]) / np.sum(grid["target_mass"])
                valid = model_mass.sum()
                probs = model_mass / valid if valid > 0 else np.full_like(model_mass, np.nan)
                label = f"{variant} (off-grid mass {1 - valid:.0%})"
                if kind == "discrete":
                    if not target_drawn:
                        ax.bar(points, target, width=0.9, color="#dddddd", label="target")
                        target_drawn = True
                    ax.plot(points, probs, **line_style(variant), markersize=4, markevery=_every(points), label=label)
                    ax.set_ylabel("probability")
                else:
                    if not target_drawn:
                        ax.plot(points, np.cumsum(target), color="black", linewidth=2.2, label="target")
                        target_drawn = True
                    ax.plot(points, np.cumsum(probs), **line_style(variant), markersize=4, markevery=_every(points),
                            label=label)
                    ax.set_ylabel("cumulative probability")
            ax.set_xlabel("value")
            ax.set_title(f"{model}: {title}\n{distribution_id}", fontsize=8)
            ax.legend(fontsize=8)
    fig.suptitle(f"Exact model distributions against the target (renormalized over the grid){note}",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, pdf_path, png_path)


def plot_valid_rate(summary_csv: str | Path, pdf_path: str | Path, png_path: str | Path, *,
                    note: str = "") -> None:
    """Sampled valid rate and exact valid mass per model and variant, for each split."""
    summary = pd.read_csv(summary_csv)
    splits = [s for s in SPLIT_TITLES if s in set(summary["split"])]
    models = list(dict.fromkeys(summary["model"]))
    variants = _variant_order(summary["variant"].unique())
    measures = [(m, label) for m, label in (("valid_rate", "valid rate (sampled)"),
                                            ("exact_valid_mass", "valid mass (exact)")) if m in summary]
    fig, axes = plt.subplots(1, len(splits), figsize=(5.2 * len(splits), 3.4), squeeze=False)
    width = 0.8 / (len(variants) * len(measures))
    for ax, split in zip(axes[0], splits):
        offset = 0
        for variant in variants:
            for measure, label in measures:
                part = summary[(summary["split"] == split) & (summary["variant"] == variant)]
                values = part.set_index("model").reindex(models)[measure].to_numpy(dtype=float)
                x = np.arange(len(models)) + (offset - (len(variants) * len(measures) - 1) / 2) * width
                # The variant by colour and hatch, the measure by shade (exact: lighter).
                ax.bar(x, values, width, **bar_style(variant), alpha=0.5 if measure == "exact_valid_mass" else 1.0,
                       label=f"{variant}: {label}")
                offset += 1
        ax.set_ylim(0, 1.05)
        ax.set_xticks(np.arange(len(models)), models, fontsize=8)
        ax.set_ylabel("fraction (family mean)")
        ax.set_title(SPLIT_TITLES[split])
        ax.legend(fontsize=8)
    fig.suptitle(f"Valid answers: parsed numbers inside the support{note}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, pdf_path, png_path)
