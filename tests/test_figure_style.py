"""Figures everyone can read: colours that survive colour-vision deficiency, a second cue beside the
colour, and no text below 8 pt at the saved size.

Colour-vision deficiency is simulated with the matrices of Machado, Oliveira and Fernandes (2009), "A
Physiologically-based Model for Simulation of Color Vision Deficiency" (IEEE TVCG 15(6)), severity 1.0,
applied to linear sRGB. Two colours count as distinguishable when their CIE76 colour difference (Euclidean
distance in CIE L*a*b*, D65) is at least 15. One just-noticeable difference is about 2.3 for large
side-by-side patches (Sharma 2003); the marks of these figures are thin lines, small markers and narrow
bars, legend swatches a few millimetres wide, for which the noticeable difference grows several-fold
(Szafir 2017, "Modeling Color Difference for Visualization Design"), so 15 (6.5 patch JNDs) asks that
the colours be told apart at a glance, not merely be different.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from cft.figures.style import (
    METHOD_COLORS,
    METHOD_HATCHES,
    METHOD_LINESTYLES,
    METHOD_MARKERS,
    MIN_FONT_PT,
    plt,
    save_figure,
)
from cft.figures.training_curves import plot_training_curves
from cft.figures.transfer import LETTER_COLORS, LETTER_HATCHES

MIN_DELTA_E = 15.0

MACHADO_2009 = {
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                     [-0.011820, 0.042940, 0.968881]],
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.097216],
                   [-0.003882, -0.048116, 1.051998]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                   [0.004733, 0.691367, 0.303900]],
}
SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
D65_WHITE = np.array([0.95047, 1.0, 1.08883])


def linear_rgb(hex_color: str) -> np.ndarray:
    srgb = np.array([int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def lab(linear: np.ndarray) -> np.ndarray:
    t = SRGB_TO_XYZ @ linear / D65_WHITE
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def seen_as(hex_color: str, deficiency: str | None) -> np.ndarray:
    """The colour's L*a*b* for normal vision (None) or as simulated for the deficiency."""
    linear = linear_rgb(hex_color)
    if deficiency is not None:
        linear = np.clip(np.array(MACHADO_2009[deficiency]) @ linear, 0, 1)
    return lab(linear)


def test_simulation_reproduces_the_known_red_green_confusion():
    # tab10's red and green, the old pair of hard and SSoT: distinct to normal vision, close under
    # deuteranopia. This is the failure the palette must avoid, so the simulation must show it.
    red, green = "#d62728", "#2ca02c"
    assert np.linalg.norm(seen_as(red, None) - seen_as(green, None)) > 50
    assert np.linalg.norm(seen_as(red, "deuteranopia") - seen_as(green, "deuteranopia")) < MIN_DELTA_E


@pytest.mark.parametrize("deficiency", [None, *MACHADO_2009])
@pytest.mark.parametrize("palette", [METHOD_COLORS, LETTER_COLORS], ids=["variants", "mcq_letters"])
def test_every_pair_of_colours_stays_distinguishable(palette, deficiency):
    close = []
    for (a, color_a), (b, color_b) in itertools.combinations(palette.items(), 2):
        delta = float(np.linalg.norm(seen_as(color_a, deficiency) - seen_as(color_b, deficiency)))
        if delta < MIN_DELTA_E:
            close.append(f"{a}/{b}: {delta:.1f}")
    assert not close, f"{deficiency or 'normal vision'}: colour pairs closer than delta-E {MIN_DELTA_E}: {close}"


def test_every_variant_has_a_second_cue_of_its_own():
    for cue in (METHOD_MARKERS, METHOD_LINESTYLES, METHOD_HATCHES):
        assert cue.keys() == METHOD_COLORS.keys()
        values = [str(value) for value in cue.values()]
        assert len(set(values)) == len(values), cue
    assert len(set(LETTER_HATCHES.values())) == len(LETTER_COLORS)


def test_save_figure_refuses_text_below_the_minimum(tmp_path):
    fig, ax = plt.subplots()
    ax.text(0.5, 0.5, "too small", fontsize=MIN_FONT_PT - 1)
    with pytest.raises(ValueError, match="too small.*below the 8 pt minimum"):
        save_figure(fig, tmp_path / "f.pdf")
    assert not (tmp_path / "f.pdf").exists()
    plt.close(fig)


def test_training_curves_draw_every_variant_with_its_colour_marker_and_line_style(tmp_path, monkeypatch):
    logs = {}
    for k, method in enumerate(METHOD_COLORS):
        path = tmp_path / f"{method}.csv"
        pd.DataFrame({"step": range(1, 31), "loss": np.linspace(2.0 + k, 1.0 + k, 30), "lr": 1e-4}).to_csv(path)
        logs[("m", method)] = path
    drawn = {}
    monkeypatch.setattr("cft.figures.training_curves.save_figure",
                        lambda fig, *paths: (drawn.update(fig=fig), save_figure(fig, *paths)))
    plot_training_curves(logs, tmp_path / "curves.pdf", tmp_path / "curves.png")
    assert (tmp_path / "curves.pdf").is_file()
    handles, labels = drawn["fig"].axes[0].get_legend_handles_labels()
    styles = {label.split(" (")[0]: (h.get_color(), h.get_marker(), str(h.get_linestyle())) for h, label in
              zip(handles, labels)}
    assert len(styles) == len(METHOD_COLORS)
    assert len(set(styles.values())) == len(METHOD_COLORS)
