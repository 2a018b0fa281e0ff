"""What counts as text for a name, and how text from outside is written where it must
stay readable. Pure: standard library only.

A name (from an alias file, an Admin API, the history) is text a person reads and every
output writes: JSON answers, Prometheus labels, CSV cells, log lines. Two kinds of code
point break those outputs or hide what they show, and no name needs them:

- a lone surrogate (U+D800 to U+DFFF), which JSON can spell (``"\\ud800"``) but UTF-8
  cannot encode: written to a UTF-8 output, it is an exception;
- a control character (Unicode's ``Cc``: U+0000 to U+001F, U+007F to U+009F) other than
  TAB: a NUL, an ESC that starts a terminal's escape sequence, a CR or LF that splits a
  line, a row or a label.
"""

from __future__ import annotations

import re

__all__ = ["REPLACEMENT", "escaped", "not_text_because", "valid_text", "without_surrogates"]

REPLACEMENT = "\ufffd"
_NOT_TEXT = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def not_text_because(text: str) -> str | None:
    """Why ``text`` cannot be a name (its first offending code point), or None."""
    found = _NOT_TEXT.search(text)
    if found is None:
        return None
    code = ord(found.group())
    kind = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
    return f"holds {kind} (U+{code:04X}) at character {found.start() + 1}"


def valid_text(text: str) -> str:
    """``text`` with each lone surrogate and control character but TAB replaced by U+FFFD."""
    return _NOT_TEXT.sub(REPLACEMENT, text)


def without_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, so that it can be written as
    UTF-8; control characters are kept (a CSV cell or a JSON document keeps them exactly)."""
    return _SURROGATE.sub(REPLACEMENT, text)


def escaped(text: str) -> str:
    """``text`` as a log line may show it: every character ``str.isprintable`` refuses
    (controls, lone surrogates, format characters such as U+202E, separators other than
    the space) as its Python escape, ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``; a backslash
    stays as it is."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(ord(c)) for c in text)


def _escape(code: int) -> str:
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
