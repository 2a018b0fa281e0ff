"""Where the id members sit in a large JSON body, found by array passes, not a regex.

On a page of thousands of rows, the fast path's regular-expression pass (fast_path.py)
spends most of its time in Python's regex engine stepping from quote to quote. Here a
handful of numpy passes do the same search: in a body with no backslash every quote opens
or closes a string, so the quotes' positions pair up into strings; the strings spelled
like an id field are the candidate keys; and the bytes right after each key tell where
its member ends, by the same rule as the pattern of ``insertion.Spelling``. Members that
follow one another directly (a usage row's ``project_id``, ``user_id`` and
``api_key_id``) form one *run*. A page has a run or
two per row but only a few hundred distinct run texts, so the caller amends each distinct
text once and copies the rest.

Only the layouts serialisers write are read here: no whitespace before a colon, at most
one space after it, a string or ``null`` as the id, and no name field already present.
For anything else the answer is None, and the fast path's regex pass, which reads every
layout, does the work: the result is the same, only slower.

Pure: no I/O, no clock, no Twisted.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from orgproxy.fields import ADDED_FIELDS, NAME_FIELD_FOR_ID

_QUOTE, _COLON, _SPACE, _COMMA, _N = (ord(c) for c in '": ,n')
_VALUE_ENDS = np.frombuffer(b",}]", np.uint8)  # what follows a string used as a value


def _word(text: bytes) -> int:
    return int.from_bytes(text, "little")


_MIXER = np.uint64(0x9E3779B97F4A7C15)


def _mix(first: npt.NDArray[np.uint64], last: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """One word for a string's two words (followed by an exact check: only a filter)."""
    return first ^ (last * _MIXER)


def _middle_offset(length: Any) -> Any:
    """Where a string's middle word starts, after its opening quote: bytes 8 to 16 of a
    long name; for a name of 16 letters or fewer, its last word again (or, at 7 letters,
    the word from the quote), which the other two words already check."""
    return np.minimum(8, length - 8)


class FieldTable:
    """One field set's id fields and added fields, as the array passes look for them.

    Each field name is its string's length and the two 8-byte words at its ends (which
    overlap, or take in a quote for a name of 7 letters): for names of up to 16 letters
    the two words spell the whole name, so equal words and length mean an equal name. An
    id field of 17 to 24 letters (Anthropic's ``service_account_id``) has its middle word
    checked too, so that an id is still found exactly.
    """

    def __init__(self, id_fields: Iterable[str], added_fields: Iterable[str]):
        fields = [(f.encode(), True) for f in id_fields] + [(f.encode(), False) for f in added_fields]
        quoted = [b'"%s"' % name for name, _ in fields]
        self.lengths = np.array([len(name) for name, _ in fields], np.int64)
        self.first = np.array([_word(q[1:9]) for q in quoted], np.uint64)
        self.last = np.array([_word(q[-9:-1]) for q in quoted], np.uint64)
        self.middle = np.array([_word(q[1 + int(_middle_offset(len(q) - 2)):][:8]) for q in quoted], np.uint64)
        self.is_id = np.array([is_id for _, is_id in fields])
        assert self.lengths[self.is_id].max() <= 24 and self.lengths.min() >= 7
        self.long_ids = bool((self.lengths[self.is_id] > 16).any())
        mixed = _mix(self.first, self.last)
        assert np.unique(mixed).size == mixed.size  # each field found by its own signature
        self.order = np.argsort(mixed)
        self.sorted_mixed = mixed[self.order]
        # Which lengths to look at at all, as a table over lengths (longer ones are clipped).
        self.wanted_length = np.zeros(int(self.lengths.max()) + 2, bool)
        self.wanted_length[self.lengths] = True


OPENAI_TABLE = FieldTable(NAME_FIELD_FOR_ID, ADDED_FIELDS)

Ints = npt.NDArray[np.int64]
# Byte positions: 32-bit where the body allows it (every body --max-response-bytes lets
# through, unless raised past 2 GiB), which halves the largest arrays here.
Positions = npt.NDArray[np.int32] | npt.NDArray[np.int64]

# Bytes of the body compared with a quote at once: the comparison's array of booleans is
# as large as what it compares, so a large page is searched in blocks of this size rather
# than with one array of its own size.
QUOTE_BLOCK = 1 << 20


def quote_positions(data: npt.NDArray[np.uint8]) -> Positions:
    """Where the quotes are in ``data``, ascending."""
    kind = np.int32 if data.size <= np.iinfo(np.int32).max else np.int64
    if data.size <= QUOTE_BLOCK:
        return np.flatnonzero(data == _QUOTE).astype(kind)
    blocks = [np.flatnonzero(data[start:start + QUOTE_BLOCK] == _QUOTE).astype(kind) + kind(start)
              for start in range(0, data.size, QUOTE_BLOCK)]
    return np.concatenate(blocks)


def id_member_runs(body: bytes, table: FieldTable = OPENAI_TABLE) -> Ints | None:
    """``[start, end, start, end, ...]``: the byte ranges of the runs of id members (of
    the fields of ``table``, by default OpenAI's), in order, or None when the body holds
    something left to the regex pass.

    ``body`` must be valid JSON with no backslash in it.
    """
    if len(body) < 16:
        return None  # too short to be worth it (and for the 8-byte words below)
    data = np.frombuffer(body, np.uint8)
    quotes = quote_positions(data)
    if quotes.size % 2:
        return None  # not the body this scan assumes; the regex pass will see
    opens, closes = quotes[0::2], quotes[1::2]
    keys = _id_keys(body, opens, closes, table)
    if keys is None or not keys.size:
        return None if keys is None else _NONE
    after_key = closes[keys] + 1
    if after_key[-1] == len(body):
        return None  # the body is that one string
    follower = data[after_key]
    is_member = follower == _COLON
    if not is_member.all():
        # The field's name used as a value (say in a list) is no member: the regex pass
        # skips it too. Anything else here is whitespace before a colon.
        if not (is_member | np.isin(follower, _VALUE_ENDS)).all():
            return None
        keys, after_key = keys[is_member], after_key[is_member]
        if not keys.size:
            return _NONE
    # One space after the colon, or none.
    value_at = after_key + 1 + (data[after_key + 1] == _SPACE)
    first = data[value_at]
    is_string = first == _QUOTE
    if not (is_string | (first == _N)).all():
        return None  # a number, object or array as the id, or more whitespace
    if keys[-1] + 2 >= opens.size:
        # An id member among the last strings: sentinels, so that the string after
        # the last one can be named.
        end = np.array((len(body), len(body)), opens.dtype)
        opens, closes = np.append(opens, end), np.append(closes, end)
    value_string = keys + 1
    if not (opens[value_string] == value_at)[is_string].all():
        return None
    value_end = np.where(is_string, closes[value_string] + 1, value_at + 4)  # "...", or null
    # A comma right after the value belongs to the member, with the whitespace after it
    # up to the next key's opening quote (the regex's greedy ``(,\s*)?``).
    next_string = np.where(is_string, keys + 2, keys + 1)
    member_end = np.where(data[value_end] == _COMMA, opens[next_string], value_end)
    member_start = opens[keys]
    # A member that starts where the one before ends continues its run.
    breaks = np.flatnonzero(member_end[:-1] != member_start[1:])
    bounds = np.empty(2 * (breaks.size + 1), np.int64)
    bounds[0::2] = member_start[np.concatenate(([0], breaks + 1))]
    bounds[1::2] = member_end[np.concatenate((breaks, [keys.size - 1]))]
    return bounds


_NONE: Ints = np.empty(0, np.int64)
_DIGITS = 8  # piece lengths up to 99,999,999 bytes in a struct format


def cut(body: bytes, bounds: Ints) -> list[bytes]:
    """``body`` cut at each of ``bounds`` (ascending): ``len(bounds) + 1`` pieces.

    One ``struct.unpack`` whose format is ``<length>s`` per piece makes them all in C,
    rather than a slice per piece in Python; the format itself is written by array
    passes, digit by digit. (bench/paths.py times both.)
    """
    edges = np.concatenate(([0], bounds, [len(body)]))
    lengths = np.diff(edges)
    if lengths.size and int(lengths.max()) >= 10 ** _DIGITS:
        cuts = edges.tolist()
        return list(map(body.__getitem__, map(slice, cuts[:-1], cuts[1:])))
    spelled = np.empty((lengths.size, _DIGITS + 1), np.uint8)
    spelled[:, _DIGITS] = ord("s")
    left = lengths.astype(np.uint32)  # narrower words divide faster
    for column in range(_DIGITS - 1, -1, -1):
        left, digit = np.divmod(left, 10)
        spelled[:, column] = digit
    spelled[:, :_DIGITS] += ord("0")
    return list(struct.Struct(spelled.tobytes()).unpack(body))


def _id_keys(body: bytes, opens: Positions, closes: Positions, table: FieldTable) -> Ints | None:
    """The indexes (among all strings) of the strings spelled like an id field, or None
    if one that may be a field the proxy adds is there too."""
    lengths = closes - opens - 1
    wanted = table.wanted_length
    candidates = np.flatnonzero(wanted[np.minimum(lengths, wanted.size - 1)])
    # Every 8 bytes of the body as one little-endian word, at every offset: no copy.
    # Candidates are 7 letters or longer, so both words lie between their quotes or on them.
    words = np.ndarray((len(body) - 7,), "<u8", buffer=body, strides=(1,))
    first, last = words[opens[candidates] + 1], words[closes[candidates] - 8]
    mixed = _mix(first, last)
    # The field each candidate may be (a near miss where it is none), then the exact check.
    order = table.order
    field = order[np.minimum(np.searchsorted(table.sorted_mixed, mixed), order.size - 1)]
    is_field = ((table.first[field] == first) & (table.last[field] == last)
                & (table.lengths[field] == lengths[candidates]))
    if table.long_ids:
        middle = words[opens[candidates] + 1 + _middle_offset(lengths[candidates])]
        is_field &= table.middle[field] == middle
    if (is_field & ~table.is_id[field]).any():
        # Possibly a name field already there (exactly so for names of up to 16
        # letters): the regex pass decides what it means.
        return None
    return candidates[is_field]
