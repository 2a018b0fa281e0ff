"""Counts in words people read: "1 request", "2 requests", "0.5 seconds".

Log events keep the number itself as a field of its own (``count``, ``timeout``) for
programs; the counted phrase is only for the line a person reads.
"""

from __future__ import annotations


def counted(number: float, noun: str, plural: str | None = None) -> str:
    """``number`` and ``noun``, singular only for exactly one."""
    shown = str(number) if isinstance(number, int) else f"{number:g}"
    return f"{shown} {noun if number == 1 else plural or noun + 's'}"
