"""Shared figure style and a deterministic save."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import matplotlib.text  # noqa: E402

from cft.io import atomic_path  # noqa: E402

# Okabe & Ito's colour-universal palette ("Color Universal Design", 2008), told apart by readers with
# any common colour-vision deficiency. One fixed colour per variant, in the order figures list them: the
# base model, the paper's methods, the new objectives, the baselines. Okabe-Ito's yellow is left out
# (thin yellow lines vanish on white); the ninth variant takes Paul Tol's indigo and SSoT a dark grey.
# tests/test_figure_style.py checks every pair under a simulated deuteranopia.
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7"}
METHOD_COLORS = {"base": OKABE_ITO["black"], "soft": OKABE_ITO["blue"], "hard": OKABE_ITO["vermillion"],
                 "fullsupport": OKABE_ITO["reddish_purple"], "exactdigit": OKABE_ITO["sky_blue"],
                 "temperature": OKABE_ITO["orange"], "ats_smooth": OKABE_ITO["bluish_green"],
                 "ats_kl": "#332288", "ssot": "#555555"}
# The second cue, for print in grey and for readers who cannot use the colours: a marker and a line
# style per variant for lines, a hatch per variant for bars.
METHOD_MARKERS = {"base": "o", "soft": "s", "hard": "^", "fullsupport": "D", "exactdigit": "v",
                  "temperature": "P", "ats_smooth": "X", "ats_kl": "*", "ssot": "h"}
METHOD_LINESTYLES = {"base": "-", "soft": (0, (10, 2)), "hard": "--", "fullsupport": "-.", "exactdigit": ":",
                     "temperature": (0, (5, 1)), "ats_smooth": (0, (3, 1, 1, 1, 1, 1)), "ats_kl": (0, (1, 2)),
                     "ssot": (0, (8, 2, 2, 2))}
METHOD_HATCHES = {"base": "", "soft": "//", "hard": "\\\\", "fullsupport": "xx", "exactdigit": "..",
                  "temperature": "--", "ats_smooth": "||", "ats_kl": "++", "ssot": "oo"}

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


def stand_in_note(models: list[dict]) -> str:
    """A suffix for figure titles naming the offline stand-ins among the configured models."""
    packaged = [m["name"] for m in models if m["source"].startswith("packaged:")]
    if not packaged:
        return ""
    return (f"\n{', '.join(packaged)}: packaged 4-bit GGUF de-quantized offline "
            "(a stand-in close to, not identical with, the published weights)")
