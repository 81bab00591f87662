"""Numeric answer extraction for GSM8K-style generation tasks, strict and flexible.

Strict: the model must mark its answer as ``#### <number>`` (the GSM8K convention the few-shot
demonstrations teach); the rest of that line must hold exactly one number. Flexible: the last number
anywhere in the response. Numbers are compared after normalization (commas removed, ``12.50`` ->
``12.5``, ``1,234.00`` -> ``1234``), so formatting never decides correctness. A response without an
extractable answer gets None together with a reason; it counts as wrong, never as missing.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
STRICT_MARKER = re.compile(r"####\s*([^\n]*)")
# Text after these marks a new demonstration the model started to write, not its answer.
STOP_STRINGS = ("Question:", "</s>", "<|im_end|>")


def normalize_number(text: str) -> str | None:
    """Canonical string of a number: integral values as integers, others without trailing zeros."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def truncate_at_stop(text: str, stop_strings=STOP_STRINGS) -> str:
    cut = min((i for i in (text.find(s) for s in stop_strings) if i >= 0), default=len(text))
    return text[:cut].strip()


def extract_strict(response: str) -> tuple[str | None, str | None]:
    """(answer, None) or (None, reason) for the first ``####`` line holding exactly one number."""
    marker = STRICT_MARKER.search(response)
    if marker is None:
        return None, "no_marker"
    numbers = NUMBER.findall(marker.group(1))
    if len(numbers) != 1:
        return None, "marker_without_single_number"
    return normalize_number(numbers[0]), None


def extract_flexible(response: str) -> tuple[str | None, str | None]:
    """(answer, None) or (None, reason) for the last number in the response."""
    numbers = NUMBER.findall(response)
    if not numbers:
        return None, "no_number"
    return normalize_number(numbers[-1]), None


def gold_answer(solution: str) -> str:
    """The normalized number after the last ``####`` of a GSM8K solution (or a bare number)."""
    tail = solution.rsplit("####", 1)[-1].strip()
    answer = normalize_number(tail)
    if answer is None:
        raise ValueError(f"gold answer is not a number: {solution!r}")
    return answer
