"""Training curves: loss against optimizer step, one panel per model, one line per method."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from cft.figures.style import line_style, plt, save_figure

LOSS_LABELS = {
    "soft": "soft: mean per-step KL(target || model) [nats]",
    "hard": "hard: token-mean cross-entropy [nats]",
}


def plot_training_curves(logs: Mapping[tuple[str, str], str | Path], pdf_path: str | Path,
                         png_path: str | Path, *, smoothing: int = 10) -> None:
    """`logs` maps (model, method) to a train_log.csv with columns step, loss, lr."""
    models = sorted({model for model, _ in logs})
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        for (log_model, method), path in sorted(logs.items()):
            if log_model != model:
                continue
            frame = pd.read_csv(path)
            style = line_style(method)
            raw, = ax.plot(frame["step"], frame["loss"], color=style.get("color"), alpha=0.25, linewidth=0.8)
            smoothed = frame["loss"].rolling(smoothing, min_periods=1).mean()
            ax.plot(frame["step"], smoothed, **{"color": raw.get_color(), **style}, linewidth=1.8,
                    markevery=max(1, len(frame) // 10), markersize=5,
                    label=f"{LOSS_LABELS.get(method, method)} ({smoothing}-step mean)")
        ax.set_title(f"{model}: training loss")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss [nats]")
        ax.set_yscale("log")
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    save_figure(fig, pdf_path, png_path)
