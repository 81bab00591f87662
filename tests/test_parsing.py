"""The strict number parser: the paper's cases, support checks, and no string that makes it raise."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cft.evaluation.parsing import ERROR_CODES, ParsedSample, parse_sample

REAL_LINE = (None, None)
NON_NEGATIVE = (0.0, None)


@pytest.mark.parametrize(
    ("raw", "text", "value"),
    [
        ("1.0e-2", "1.0e-2", 0.01),
        ("-0", "-0", 0.0),
        ("3.", "3.", 3.0),
        (" 7\n", "7", 7.0),
        ("+4", "+4", 4.0),
        (".5", ".5", 0.5),
        ("1.23E+2", "1.23E+2", 123.0),
        ("<think>x</think>5", "5", 5.0),
        ("<THINK>a\nb</think>\n 5 ", "5", 5.0),
    ],
)
def test_valid_numbers(raw: str, text: str, value: float) -> None:
    assert parse_sample(raw, REAL_LINE, integer_only=False) == ParsedSample(text, value, None)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("", "empty"),
        ("   \n\t", "empty"),
        ("<think>only thoughts</think>", "empty"),
        ("<think>never closed 5", "empty"),
        ("7 apples", "malformed"),
        ("The answer is 3", "malformed"),
        ("3.2.", "malformed"),
        ("1,000", "malformed"),
        ("\x00", "malformed"),
        ("nan", "malformed"),
        ("inf", "malformed"),
        ("-Infinity", "malformed"),
        ("0x10", "malformed"),
        ("1_000", "malformed"),
        ("e5", "malformed"),
        ("5\n6", "malformed"),
        ("\u0663", "malformed"),  # ARABIC-INDIC DIGIT THREE: not ASCII
        ("\uff17", "malformed"),  # FULLWIDTH DIGIT SEVEN
        ("1e400", "non_finite"),
        ("-1e400", "non_finite"),
    ],
)
def test_invalid_text(raw: str, error: str) -> None:
    parsed = parse_sample(raw, REAL_LINE, integer_only=False)
    assert parsed.error == error
    assert parsed.value is None
    assert not parsed.is_valid


def test_negative_zero_is_inside_a_non_negative_support() -> None:
    assert parse_sample("-0", NON_NEGATIVE, integer_only=True).is_valid


@pytest.mark.parametrize(
    ("raw", "support", "integer_only", "error"),
    [
        ("-0.5", NON_NEGATIVE, False, "below_support"),
        ("0", NON_NEGATIVE, False, None),  # bounds are inclusive
        ("1", (0.0, 1.0), False, None),
        ("1.0000001", (0.0, 1.0), False, "above_support"),
        ("3.5", NON_NEGATIVE, True, "non_integer"),
        ("3.0", NON_NEGATIVE, True, None),
        ("3.0000000001", NON_NEGATIVE, True, None),  # within 1e-9 of an integer
        ("3.00001", NON_NEGATIVE, True, "non_integer"),
        ("0", (1.0, None), True, "below_support"),  # Geometric starts at 1
        ("21", (0.0, 20.0), True, "above_support"),
    ],
)
def test_support_and_integers(raw, support, integer_only, error) -> None:
    parsed = parse_sample(raw, support, integer_only)
    assert parsed.error == error
    # The number is kept even when it is out of support, so the raw file shows what was said.
    assert parsed.value == float(raw)


def test_huge_inputs_do_not_raise() -> None:
    assert parse_sample("1" * 100_000, REAL_LINE, integer_only=False).error == "non_finite"
    assert parse_sample("9" * 300, REAL_LINE, integer_only=True).value == float("9" * 300)
    assert parse_sample("x" * 1_000_000, REAL_LINE, integer_only=False).error == "malformed"
    nested = "<think>" * 1000 + "5" + "</think>" * 1000
    assert parse_sample(nested, REAL_LINE, integer_only=False).error in ERROR_CODES


def check_classified(parsed: ParsedSample) -> None:
    assert parsed.error is None or parsed.error in ERROR_CODES
    if parsed.error is None:
        assert parsed.value is not None and math.isfinite(parsed.value)
    if parsed.error in ("empty", "malformed", "non_finite"):
        assert parsed.value is None


@settings(max_examples=300, deadline=None)
@given(text=st.text(), support=st.sampled_from([REAL_LINE, NON_NEGATIVE, (1.0, 5.0)]),
       integer_only=st.booleans())
def test_any_text_is_classified(text: str, support, integer_only: bool) -> None:
    check_classified(parse_sample(text, support, integer_only))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(), errors=st.sampled_from(["replace", "surrogateescape", "ignore"]))
def test_any_bytes_are_classified(data: bytes, errors: str) -> None:
    check_classified(parse_sample(data.decode("utf-8", errors=errors), REAL_LINE, integer_only=False))


@settings(max_examples=300, deadline=None)
@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_printed_floats_round_trip(value: float) -> None:
    parsed = parse_sample(repr(value), REAL_LINE, integer_only=False)
    assert parsed.is_valid and parsed.value == value
