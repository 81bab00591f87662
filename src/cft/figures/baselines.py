"""The baselines' fits: mean exact trie KL against the global temperature, and the ATS heads' losses."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from cft.figures.style import plt, save_figure
from cft.io import read_json

ATS_LOSS_LABELS = {
    "ats_smooth": "ats_smooth: selective smoothing [nats]",
    "ats_kl": "ats_kl: soft-target KL [nats]",
}


def plot_baseline_fits(temperature_fits: Mapping[str, str | Path], ats_logs: Mapping[tuple[str, str], str | Path],
                       pdf_path: str | Path, png_path: str | Path) -> None:
    """Left: every trial temperature of each model's fit (mean exact trie KL on its train prompts),
    the chosen one marked. Right: each ATS head's training loss per step (one line per model and head)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for model, path in sorted(temperature_fits.items()):
        fit = read_json(path)
        trials = pd.DataFrame(fit["evaluations"]).sort_values("temperature")
        line, = left.plot(trials["temperature"], trials["mean_exact_trie_kl"], marker="o", markersize=3,
                          label=f"{model} (T = {fit['temperature']:.3g})")
        left.scatter([fit["temperature"]], [fit["mean_exact_trie_kl"]], color=line.get_color(), s=60,
                     marker="*", zorder=3)
    left.set_xscale("log")
    left.set_xlabel("global temperature T")
    left.set_ylabel("mean exact trie KL on train prompts [nats]")
    left.set_title("temperature fit (star: chosen)")
    if temperature_fits:
        left.legend(fontsize=8)
    for (model, variant), path in sorted(ats_logs.items()):
        frame = pd.read_csv(path)
        right.plot(frame["step"], frame["loss"], label=f"{model}: {ATS_LOSS_LABELS.get(variant, variant)}")
    right.set_xlabel("optimizer step")
    right.set_ylabel("training loss [nats]")
    right.set_title("ATS heads (frozen model)")
    if ats_logs:
        right.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, pdf_path, png_path)
