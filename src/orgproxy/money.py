"""Money, exactly: amounts read as the decimals they were sent as, and summed as decimals.

A JSON number read as a double is read back as the shortest decimal that names that
double (``repr``), which is the number as sent wherever the sender wrote it so (as
every JSON serialiser of doubles does); a longer one is read as a Decimal in the first
place (see body/grouping.py). Sums are exact or refused: a context of a thousand digits
with every rounding an error (``NotExact``), so no sum is ever quietly rounded.

Pure, standard library only: the daemon and the report alike may use it.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal

__all__ = ["NotExact", "add", "cents_to_dollars", "decimal_text", "exact", "exactly", "plain", "total"]

# An amount as a decimal string: plain notation (no exponent, no sign but a minus), at
# most LONGEST characters, so that sums of them always fit the exact context below.
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
LONGEST = 100
_EXACT = decimal.Context(prec=1000, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN,
                         traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])


class NotExact(ArithmeticError):
    """A sum that would need rounding (over a thousand digits), or of no number at all."""


def decimal_text(value: object, longest: int | None = LONGEST) -> Decimal | None:
    """A decimal string (``"123.45"``, at most ``longest`` characters) as a Decimal; None
    for anything else (an exponent, ``NaN``, a bare ``"12."``, any other type)."""
    if isinstance(value, str) and (longest is None or len(value) <= longest) and _DECIMAL.fullmatch(value):
        return Decimal(value)
    return None


def exact(number: int | float | Decimal) -> Decimal:
    """A JSON number as the decimal it was sent as (a double by its shortest spelling)."""
    if isinstance(number, float):
        return Decimal(repr(number))
    return Decimal(number)


def add(a: Decimal, b: Decimal) -> Decimal:
    """``a + b``, exactly; NotExact where that cannot be."""
    try:
        return _EXACT.add(a, b)
    except decimal.DecimalException as e:
        raise NotExact(str(e)) from None


@contextmanager
def exactly() -> Iterator[None]:
    """Decimal arithmetic within is exact or raises NotExact: for many sums at C speed
    (``+`` and ``sum``), where ``add`` per amount would cost a call each."""
    try:
        with decimal.localcontext(_EXACT):
            yield
    except decimal.DecimalException as e:
        raise NotExact(str(e)) from None


def total(amounts: Iterable[Decimal]) -> Decimal:
    """The sum of ``amounts``, exactly; NotExact where that cannot be."""
    with exactly():
        return sum(amounts, Decimal(0))


def cents_to_dollars(cents: Decimal) -> Decimal:
    """An amount in cents as dollars, exactly (``"40.5"`` cents is 0.405 dollars)."""
    try:
        return _EXACT.scaleb(cents, Decimal(-2))
    except decimal.DecimalException as e:
        raise NotExact(str(e)) from None


def plain(amount: Decimal) -> str:
    """An amount in plain notation, never with an exponent (``"1607.9417"``)."""
    return format(amount, "f")
