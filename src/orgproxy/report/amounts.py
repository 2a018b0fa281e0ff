"""Amounts as the report reads them: JSON with exact decimals (``parse_float=Decimal``), so
that every amount is an int or a Decimal with the digits it was sent with, and sums of
them that never round a digit away. Pure: the standard library only."""

from __future__ import annotations

import re
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from typing import Any

# Sums of amounts as sent: a thousand digits hold any of them, and any rounding is an error.
EXACT = Context(prec=1000, traps=[Inexact, InvalidOperation, Overflow])
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
# No amount or count is anywhere near 10^100, or needs digits beyond 10^-200: a page that
# says so (1e999999) is not summed (it would take a million digits), nor written. Sums of
# amounts within these bounds always fit EXACT's thousand digits.
_MAGNITUDE = 100


def is_amount(value: object) -> bool:
    """A number as the report reads JSON: an int or a Decimal, never a bool."""
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool)


def decimal_of(value: object) -> Decimal | None:
    """A finite amount of sane size: a number (int or Decimal) or a decimal string
    (Anthropic's cents; an OpenAI value sent as a string); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str) and len(value) <= 100 and _DECIMAL_TEXT.fullmatch(value):
        amount = Decimal(value)
    else:
        return None
    if not amount.is_finite() or (amount and not -_MAGNITUDE <= amount.adjusted() <= _MAGNITUDE) \
            or -amount.as_tuple().exponent > 2 * _MAGNITUDE:  # type: ignore[operator]
        return None
    return amount


def plus(a: Any, b: Any) -> Any:
    """``a + b``: integers as integers, anything with a Decimal exactly."""
    if type(a) is int and type(b) is int:
        return a + b
    return EXACT.add(a, b)
