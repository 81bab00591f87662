"""Shared figure style and a deterministic save."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from cft.io import atomic_path  # noqa: E402

# One fixed color per variant, in the order figures list them: the base model, the paper's methods, the
# new objectives, the baselines. (Left to matplotlib's cycle, the fourth variant would take hard's red.)
METHOD_COLORS = {"base": "#7f7f7f", "soft": "#1f77b4", "hard": "#d62728", "fullsupport": "#9467bd",
                 "exactdigit": "#17becf", "temperature": "#8c564b", "ats_smooth": "#ff7f0e", "ats_kl": "#bcbd22",
                 "ssot": "#2ca02c"}

plt.rcParams.update({
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "svg.hashsalt": "cft",
})


def save_figure(fig, pdf_path: str | Path, png_path: str | Path | None = None) -> None:
    """Save without creation dates or software stamps, atomically."""
    with atomic_path(pdf_path) as tmp:
        fig.savefig(tmp, format="pdf", metadata={"CreationDate": None, "ModDate": None, "Producer": None,
                                                 "Creator": None})
    if png_path is not None:
        with atomic_path(png_path) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def plain_log_ticks(axis) -> None:
    """Label a log-scaled axis with plain numbers (0.5, 1, 2) instead of mantissa x 10^k; minor ticks
    are labelled only where the axis spans less than about a decade, so that it keeps some labels."""
    from matplotlib.ticker import LogFormatter

    axis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def stand_in_note(models: list[dict]) -> str:
    """A suffix for figure titles naming the offline stand-ins among the configured models."""
    packaged = [m["name"] for m in models if m["source"].startswith("packaged:")]
    if not packaged:
        return ""
    return (f"\n{', '.join(packaged)}: packaged 4-bit GGUF de-quantized offline "
            "(a stand-in close to, not identical with, the published weights)")
