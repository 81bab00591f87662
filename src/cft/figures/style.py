"""Shared figure style and a deterministic save."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import matplotlib.text  # noqa: E402

from cft.io import atomic_path  # noqa: E402

from cft.styles import OKABE_ITO  # noqa: E402
from cft.training import METHODS  # noqa: E402
from cft.variants import VARIANTS  # noqa: E402

# One fixed style per variant (`cft.styles.Style`, kept on the registry entries of the variants and the
# training methods), in the order figures list them: the base model, the training methods, the baselines.
STYLES = {"base": VARIANTS["base"].style, **{name: method.style for name, method in METHODS.items()},
          **{name: variant.style for name, variant in VARIANTS.items() if name != "base"}}
METHOD_COLORS = {name: style.color for name, style in STYLES.items()}
METHOD_MARKERS = {name: style.marker for name, style in STYLES.items()}
METHOD_LINESTYLES = {name: style.linestyle for name, style in STYLES.items()}
METHOD_HATCHES = {name: style.hatch for name, style in STYLES.items()}

# The smallest text of any figure, in points at the saved (printed) size; `save_figure` enforces it.
MIN_FONT_PT = 8

plt.rcParams.update({
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "legend.fontsize": MIN_FONT_PT,
    "legend.title_fontsize": MIN_FONT_PT,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    # Variants without a fixed colour (ablations) cycle through the same palette.
    "axes.prop_cycle": plt.cycler(color=[c for name, c in OKABE_ITO.items() if name != "yellow"]),
    "hatch.linewidth": 0.6,
    "svg.hashsalt": "cft",
})


def line_style(variant: str) -> dict:
    """Colour, marker and line style of a variant's line (empty for variants without a fixed style)."""
    if variant not in METHOD_COLORS:
        return {}
    return {"color": METHOD_COLORS[variant], "marker": METHOD_MARKERS[variant],
            "linestyle": METHOD_LINESTYLES[variant]}


def bar_style(variant: str) -> dict:
    """Colour and hatch of a variant's bars (empty for variants without a fixed style)."""
    if variant not in METHOD_COLORS:
        return {}
    return {"color": METHOD_COLORS[variant], "hatch": METHOD_HATCHES[variant], "edgecolor": "white"}


def check_font_sizes(fig) -> None:
    """Raise if any visible text of `fig` is smaller than MIN_FONT_PT."""
    fig.canvas.draw()  # legends and tick labels exist only once drawn
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < MIN_FONT_PT:
            raise ValueError(f"figure text {text.get_text()[:40]!r} is {text.get_fontsize():g} pt, below the "
                             f"{MIN_FONT_PT} pt minimum (cft.figures.style.MIN_FONT_PT)")


def save_figure(fig, pdf_path: str | Path, png_path: str | Path | None = None) -> None:
    """Save without creation dates or software stamps, atomically, after checking that no text is
    smaller than MIN_FONT_PT at the saved size."""
    check_font_sizes(fig)
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
