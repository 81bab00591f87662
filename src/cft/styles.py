"""A variant's look in every figure, kept on its registry entry (`cft.variants.register_variant`,
`cft.training.methods.register_method`) so that adding a variant or a method is one place.

Colours: Okabe & Ito's colour-universal palette ("Color Universal Design", 2008), told apart by readers
with any common colour-vision deficiency; its yellow is left out (thin yellow lines vanish on white),
and Paul Tol's indigo and a dark grey extend it. tests/test_figure_style.py checks every registered
pair under simulated deficiencies.
"""

from __future__ import annotations

from dataclasses import dataclass

OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7"}
TOL_INDIGO = "#332288"
DARK_GREY = "#555555"


@dataclass(frozen=True)
class Style:
    """A colour, and the second cue for print in grey and for readers who cannot use the colours: a
    marker and a line style for lines, a hatch for bars."""

    color: str
    marker: str
    linestyle: str | tuple
    hatch: str
