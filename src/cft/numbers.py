"""The one number grammar of cft: what a model's answer and a command-line parameter may spell.

ASCII digits only, an optional sign, decimal point and exponent ("+4", "5.", ".5", "1.23e-2");
no underscores, spaces, "nan"/"inf" words or other scripts' digits, all of which Python's float()
would accept. A number that overflows to infinity is refused as non-finite.
"""

from __future__ import annotations

import math
import re

EMPTY = "empty"
MALFORMED = "malformed"
NON_FINITE = "non_finite"

# re.ASCII makes \d mean [0-9]; fullmatch (not ^...$) so that a trailing "\n" cannot slip past "$".
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)
INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
# The strings that some continuation can still turn into one number: NUMBER's prefixes, and a whole
# number followed by whitespace, which the answer parser strips. Written with [0-9] rather than
# re.ASCII so that \s stays Unicode whitespace, exactly what str.strip removes.
NUMBER_PREFIX = re.compile(
    r"[+-]?\.?"
    r"|[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)[eE][+-]?"
    r"|[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*"
)


def parse_number(text: str) -> tuple[float | None, str | None]:
    """Read ``text`` (already stripped) as exactly one finite number: (value, None) or (None, error)."""
    if not text:
        return None, EMPTY
    if NUMBER.fullmatch(text) is None:
        return None, MALFORMED
    # The pattern admits only what float() accepts; overflow such as "1e400" gives inf, not an error.
    value = float(text)
    if not math.isfinite(value):
        return None, NON_FINITE
    return value, None


def parse_integer(text: str) -> int | None:
    """``text`` as an integer of ASCII digits with an optional sign, or None."""
    return int(text) if INTEGER.fullmatch(text) else None
