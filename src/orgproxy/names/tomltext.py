"""Text written into TOML that orgproxy hands out as alias files (``/orgproxy/unknown``,
``/orgproxy/names``): keys and strings escaped as TOML requires, and comments that cannot
break out of their line. Pure."""

from __future__ import annotations

__all__ = ["comment_text", "has_surrogate", "toml_key", "toml_string"]


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (valid in JSON, ``"\\ud800"``), which TOML
    cannot spell."""
    return any("\ud800" <= c <= "\udfff" for c in text)


def _escaped(text: str) -> str:
    # Quotes and backslashes by their short escapes, whatever is not printable (control
    # characters, which TOML forbids in strings, and the like) by its code; the rest as it is.
    return "".join(c if c.isprintable() and c not in '"\\'
                   else "\\" + c if c in '"\\'
                   else f"\\U{ord(c):08x}" if ord(c) > 0xFFFF else f"\\u{ord(c):04x}" for c in text)


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (``text`` holds no lone surrogate)."""
    return f'"{_escaped(text)}"'


def toml_key(key: str) -> str:
    """``key`` as a TOML key: bare where it may be, else quoted (no lone surrogate)."""
    if key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key):
        return key
    return toml_string(key)


def comment_text(text: str) -> str:
    """``text`` for a TOML comment: what a comment may not hold (control characters, a
    newline that would end it, a lone surrogate) as its escape, backslashes doubled."""
    return "".join(c if (c.isprintable() and c != "\\") or c == "\t"
                   else "\\\\" if c == "\\" else f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"
                   for c in text)
