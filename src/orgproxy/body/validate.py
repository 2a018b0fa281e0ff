"""Whether an upstream body is one valid JSON text, as fast as that can be told.

Only a valid body is amended; anything else passes through untouched. Pure.
"""

from __future__ import annotations

import enum
import json

import orjson
import simdjson

from orgproxy.jsonvalues import refuse_constant

# simdjson validates without building Python objects, which orjson.loads builds for every
# value: it tells a page valid or not several times sooner (bench/paths.py times both;
# the figures are in bench/README.md). One parser, reused: the reactor thread is the only
# caller, and the document it returns is dropped at once, which the parser's reuse requires.
_VALIDATOR = simdjson.Parser()
# But a parser keeps the buffers of the largest document it has parsed, a few times its
# size (a copy of it, the tape, the strings, the structural indexes), held for good on top
# of the next large page's own buffers. A body this large or larger gets a parser of its
# own, let go with its buffers at once, so the reused one holds only what a smaller body
# needs. (The price: a large body's buffers are faulted in afresh.)
OWN_PARSER_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"


class Validity(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"
    # Nested deeper than any parser here goes (about a thousand levels): perhaps valid,
    # but it cannot be told, nor amended.
    TOO_DEEP = "too deep"


def is_json(body: bytes) -> bool:
    """Whether the body is one valid JSON text (UTF-8, no NaN or Infinity, no BOM)."""
    return validity(body) is Validity.VALID


def validity(body: bytes) -> Validity:
    """Whether the body is one valid JSON text (UTF-8, no NaN or Infinity, no BOM), is
    not, or is nested too deeply to tell."""
    if not body.startswith(_BOM):  # which simdjson skips, and JSON does not allow
        try:
            (_VALIDATOR if len(body) < OWN_PARSER_BYTES else simdjson.Parser()).parse(body)
            return Validity.VALID
        except (ValueError, RuntimeError):
            pass
    # simdjson and orjson refuse some valid JSON: numbers beyond 64 bits or a double's
    # range, lone surrogate escapes, deep nesting.
    try:
        orjson.loads(body)
        return Validity.VALID
    except orjson.JSONDecodeError:
        pass
    try:
        STRICT_DECODER.decode(body.decode("utf-8"))
        return Validity.VALID
    except RecursionError:
        # Raised only on reaching the nesting limit, before any error further on.
        return Validity.TOO_DEEP
    except (UnicodeDecodeError, ValueError):
        return Validity.INVALID


def _keep_spelling(number: str) -> str:
    return number


# The standard library's decoder made strict (no NaN or Infinity), and blind to what
# numbers mean: only their extent matters here, and int() of more than 4300 digits
# would refuse valid JSON.
STRICT_DECODER = json.JSONDecoder(parse_int=_keep_spelling, parse_float=_keep_spelling,
                                  parse_constant=refuse_constant)
