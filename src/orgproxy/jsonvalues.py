"""JSON values as Python reads them: what counts as a number, and what is not JSON.

Standard library only, so that the report can share it without the daemon's parsers.
"""

from __future__ import annotations


def is_number(value: object) -> bool:
    """An int or float, not a bool (which Python counts as an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def refuse_constant(name: str) -> None:
    """For json.loads(parse_constant=...): NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not JSON")
