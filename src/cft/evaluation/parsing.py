"""Strict parsing of one sampled answer into a number, checked against the family's true support.

The rule is the paper's (reference: structured-sampling.md section 8.1): after the thinking trace and
surrounding whitespace are removed, the whole text must be exactly one number. "7 apples", "3.2." or
"The answer is 3" are invalid, "+4", "5." and "1.23e-2" are valid. Unlike the paper's ``\\d``, only
ASCII digits count: a model that answers in Arabic-Indic digits has not written a number that
downstream tools read the same way. The grammar (cft.numbers) is also the one of `cft target`'s
parameters.

Parsing never raises: every string, however large or binary, becomes a `ParsedSample` whose error
code says why it is invalid, so that no sample is ever dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from cft.models import strip_thinking
from cft.numbers import EMPTY, MALFORMED, NON_FINITE, NUMBER_PREFIX, parse_number

BELOW_SUPPORT = "below_support"
ABOVE_SUPPORT = "above_support"
NON_INTEGER = "non_integer"

ERROR_CODES = (EMPTY, MALFORMED, NON_FINITE, BELOW_SUPPORT, ABOVE_SUPPORT, NON_INTEGER)
# Errors of numbers that parsed but lie outside what the family can produce.
SUPPORT_ERRORS = frozenset({BELOW_SUPPORT, ABOVE_SUPPORT, NON_INTEGER})

# |x - round(x)| at or below this counts as an integer, so "3.0" is a valid Poisson answer.
INTEGER_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ParsedSample:
    """The verdict on one answer.

    ``text`` is the answer after the thinking trace and whitespace were stripped. ``value`` is the
    number it spells whenever that number is finite, kept even when it lies outside the support so
    that the raw output file shows what the model said; it is None for empty, malformed and
    non-finite answers. ``error`` is None exactly when the answer is a valid sample.
    """

    text: str
    value: float | None
    error: str | None

    @property
    def is_valid(self) -> bool:
        return self.error is None


def cannot_become_number(text: str) -> bool:
    """True when no continuation of the decoded text ``text`` can parse as a number.

    Every thinking-trace removal of `strip_thinking` starts at a '<', so the text before the first
    '<' survives into the parsed answer, as its beginning once leading whitespace is stripped. When
    that beginning is neither a prefix of a number nor a number followed by whitespace, every
    continuation is MALFORMED: a sampler may stop the row there without changing any verdict. A
    trailing U+FFFD is a multi-byte character still being decoded (it may become whitespace), so it
    does not count yet.
    """
    committed = text.split("<", 1)[0].lstrip().rstrip("\ufffd")
    return NUMBER_PREFIX.fullmatch(committed) is None


def support_error(
    value: float, support: tuple[float | None, float | None], integer_only: bool
) -> str | None:
    """The reason a finite ``value`` cannot come from the family, or None. Bounds are inclusive."""
    lower, upper = support
    if lower is not None and value < lower:
        return BELOW_SUPPORT
    if upper is not None and value > upper:
        return ABOVE_SUPPORT
    if integer_only and abs(value - round(value)) > INTEGER_TOLERANCE:
        return NON_INTEGER
    return None


def parse_sample(
    raw_text: str, support: tuple[float | None, float | None], integer_only: bool
) -> ParsedSample:
    """Strip the thinking trace and whitespace from a decoded answer, parse it and validate it."""
    text = strip_thinking(raw_text).strip()
    value, error = parse_number(text)
    if error is None:
        error = support_error(value, support, integer_only)
    return ParsedSample(text=text, value=value, error=error)
