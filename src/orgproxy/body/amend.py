"""Add names beside ids in a JSON body, changing nothing else, to the byte.

Parsing and re-serialising would quietly alter what OpenAI sent: number spellings
(``1e-7``, ``0.10``), precision beyond a double, ``\\u`` escapes, key order of duplicates,
whitespace. So the body is never re-serialised: every name is *inserted* into the
original bytes right after its id's value, in the formatting of the id's own member, and
every other byte stays where it was.

Three ways to find the insertion points, with identical results:

- for a large body with no backslash, array passes (runs.py) find the runs of adjacent
  id members; each distinct run text is amended once by the fast path below and the
  body copied around the runs. A usage page of 31,000 rows has a few thousand distinct
  runs, so this is several times faster than a regex pass over the whole body;
- the fast path, one regular-expression pass over the bytes. In valid JSON a quote that
  is not escaped and is followed by ``api_key_id"`` and a colon can only open an object
  key, so each match is a real member. It applies when the body has no ``\\u`` escape
  (which could spell a key another way), no name field already, and every id is a
  string or null;
- the exact path, a member-by-member walk with the standard library's JSON scanner, for
  everything else (rare in practice, and always correct).

Pure: no I/O, no clock, no Twisted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from collections import Counter
from itertools import chain
from operator import itemgetter
from dataclasses import dataclass, field
from json.decoder import scanstring
from typing import TypeVar, cast

from orgproxy.fields import ADDED_FIELDS, NAME_FIELD_FOR_ID
from orgproxy.names.snapshot import Members, Names
from orgproxy.body.runs import cut, id_member_runs
from orgproxy.body.validate import STRICT_DECODER, is_json

_Kept = TypeVar("_Kept")
UNKNOWN = "unknown"
_UNKNOWN_JSON = json.dumps(UNKNOWN).encode()
_NULL_JSON = b"null"

# An id member: key, the whitespace around its colon, a simple string or null (a missing
# value group means something else: the exact path), and the comma and whitespace after
# it, which the inserted member copies so that it sits in the body's own layout.
# The fields the proxy adds are matched too: finding one already in a body (the same
# pass, rather than a search of its own) sends the body to the exact path, which never
# writes a field twice.
_ID_MEMBER = re.compile(
    rb'"(' + b"|".join(f.encode() for f in (*NAME_FIELD_FOR_ID, *ADDED_FIELDS)) + rb')"([ \t\n\r]*):([ \t\n\r]*)'
    rb'(?:"([^"\\]*)"|(null))?(,[ \t\n\r]*)?'
)
_NULL_MEMBERS = {f: ((n.encode(), _NULL_JSON),) for f, n in NAME_FIELD_FOR_ID.items()}
_UNKNOWN_MEMBERS = {f: ((n.encode(), _UNKNOWN_JSON),) for f, n in NAME_FIELD_FOR_ID.items()}
_ESCAPED_ID_KEYS = (b"\\u",) + tuple(b'\\"%s"' % f.encode() for f in NAME_FIELD_FOR_ID)


@dataclass(slots=True)
class Amended:
    """A body with names added, and what was found on the way."""

    body: bytes
    named: int = 0  # ids that got a name from the map
    unknown: int = 0  # string ids the map lacks (named "unknown")
    unknown_ids: dict[str, str] = field(default_factory=dict)  # id -> its id field, first-seen order
    # (id field, id) -> how often it occurs, for string ids: the per-object detail a debug
    # log shows, gathered per distinct id rather than per object.
    occurrences: dict[tuple[str, str], int] = field(default_factory=dict)


class _NeedsExactPath(Exception):
    """The fast path met something it does not handle; the exact path will."""


def amend_json(body: bytes, names: Names) -> Amended | None:
    """``amend_valid_json`` for a body not yet validated: None when it is not valid JSON."""
    return amend_valid_json(body, names) if is_json(body) else None


def amend_valid_json(body: bytes, names: Names) -> Amended:
    """The body, which must be valid JSON (see ``validate.is_json``), with a name beside every id.

    Every object at any depth with ``api_key_id`` gets ``api_key_name`` (likewise
    ``project_id``/``project_name`` and ``user_id``/``user_name``): the mapped name,
    ``"unknown"`` for a string id the map lacks, ``null`` for any other id. An object
    that already has the name field keeps it as it is.
    """
    has_backslash = b"\\" in body
    if not has_backslash and len(body) >= RUNS_MIN_BYTES:
        try:
            amended = _amend_runs(body, names)
            if amended is not None:
                return amended
        except _NeedsExactPath:
            return _amend_exact_or_as_is(body, names)
    if not has_backslash or _fast_path_applies(body):
        try:
            return _amend_fast(body, names.members, insertions_for(names))
        except _NeedsExactPath:
            pass
    return _amend_exact_or_as_is(body, names)


def _amend_exact_or_as_is(body: bytes, names: Names) -> Amended:
    try:
        return _amend_exact(body, names.members)
    except RecursionError:
        # Nesting deeper than Python's stack: valid, but not worth a special walker.
        return Amended(body)


# Below this size the array passes' fixed cost (a few dozen numpy calls) is more than the
# regex pass they replace.
RUNS_MIN_BYTES = 16_384


def _fast_path_applies(body: bytes) -> bool:
    # One C-speed search for a backslash: usage pages have none at all.
    return not (b"\\" in body and any(spoiler in body for spoiler in _ESCAPED_ID_KEYS))


def _layout(members: Members, before_colon: bytes, after_colon: bytes, following: bytes | None) -> bytes:
    """The members to insert after an id member, laid out like it.

    With a comma after the id member, the new members go after that comma and its
    whitespace, each taking the same comma and whitespace after itself, so on a
    pretty-printed page each gets a line and indent of its own. After an object's last
    member, they follow the id member on the same line.
    """
    if following:
        return b"".join(b'"%s"%s:%s%s%s' % (key, before_colon, after_colon, value, following)
                        for key, value in members)
    return b"".join(b',%s"%s"%s:%s%s' % (after_colon, key, before_colon, after_colon, value)
                    for key, value in members)


def _members_for(id_field: str, id_value: str | None, known: Mapping[str, Mapping[str, Members]]) -> Members:
    if id_value is None:
        return _NULL_MEMBERS[id_field]
    return known.get(id_field, {}).get(id_value) or _UNKNOWN_MEMBERS[id_field]


def _tally(result: Amended, id_field: str, id_value: str | None,
           known: Mapping[str, Mapping[str, Members]], times: int = 1) -> None:
    if id_value is None:
        return  # an ungrouped dimension: nothing to name, nothing to report
    key = (id_field, id_value)
    result.occurrences[key] = result.occurrences.get(key, 0) + times
    if id_value in known.get(id_field, {}):
        result.named += times
    else:
        result.unknown += times
        result.unknown_ids.setdefault(id_value, id_field)


# Distinct id members remembered per snapshot: pages repeat a few hundred, and a flood
# of distinct ids must not grow memory without bound.
MAX_REMEMBERED_MEMBERS = 50_000


class _Insertions(dict[bytes, tuple[bytes, str, str | None]]):
    """Matched id member -> (the same bytes followed by the members to insert, its id
    field, its id).

    Pages repeat the same ids thousands of times, and every page the same few hundred, so
    each distinct member is worked out once per snapshot of names; the per-match cost is
    one dictionary lookup.
    """

    def __init__(self, known: Mapping[str, Mapping[str, Members]]):
        super().__init__()
        self.known = known

    def __missing__(self, text: bytes) -> tuple[bytes, str, str | None]:
        match = _ID_MEMBER.fullmatch(text)
        assert match is not None
        id_field, before, after, raw_id, null, following = match.groups()
        field_name = id_field.decode()
        if field_name not in NAME_FIELD_FOR_ID:
            raise _NeedsExactPath  # a field the proxy adds is there already
        if raw_id is None and null is None:
            raise _NeedsExactPath  # a number, object or array as the id, or an escape in it
        id_value = None if raw_id is None else raw_id.decode("utf-8")
        members = _members_for(field_name, id_value, self.known)
        entry = (text + _layout(members, before, after, following), field_name, id_value)
        if len(self) < MAX_REMEMBERED_MEMBERS:
            self[text] = entry
        return entry


def _kept_with(names: Names, key: str, make: Callable[[], _Kept]) -> _Kept:
    """Work derived from a snapshot of names, made on first use and kept with it."""
    kept = names.cache.get(key)
    if kept is None:
        kept = names.cache[key] = make()
    return cast(_Kept, kept)


def insertions_for(names: Names) -> _Insertions:
    """The snapshot's own table of worked-out insertions."""
    return _kept_with(names, "insertions", lambda: _Insertions(names.members))


def _amend_fast(body: bytes, known: Mapping[str, Mapping[str, Members]],
                insertions: _Insertions | None = None) -> Amended:
    table = _Insertions(known) if insertions is None else insertions
    seen: list[bytes] = []
    remember = seen.append

    def insert(match: re.Match[bytes]) -> bytes:
        text = match[0]
        remember(text)
        return table[text][0]

    amended = _ID_MEMBER.sub(insert, body)
    result = Amended(amended if seen else body)
    for text, times in Counter(seen).items():
        _, id_field, id_value = table[text]
        _tally(result, id_field, id_value, known, times)
    return result


def _amend_runs(body: bytes, names: Names) -> Amended | None:
    """The array-pass route (see the module's docstring); None where runs.py declines."""
    bounds = id_member_runs(body)
    if bounds is None:
        return None
    if not bounds.size:
        return Amended(body)
    # Even pieces are copied as they are; odd ones are runs of id members.
    pieces = cut(body, bounds)
    runs = pieces[1::2]
    table = _run_table(names)
    times_each = Counter(runs)
    if len(times_each) * 4 > len(runs):
        # Mostly distinct runs (a page of a few hundred rows): count every run's ids at
        # C speed rather than loop over the distinct ones.
        occurrences = Counter(chain.from_iterable(map(_IDS, map(table.__getitem__, runs))))
    else:
        occurrences = Counter()
        for text, times in times_each.items():
            for id_member in table[text][1]:
                occurrences[id_member] += times
    pieces[1::2] = map(_AMENDED, map(table.__getitem__, runs))
    result = Amended(b"".join(pieces))
    known = names.members
    for (id_field, id_value), times in occurrences.items():
        _tally(result, id_field, id_value, known, times)
    return result


# A run's entry: (its text amended, the (id field, id) of each string id in it)
_RunEntry = tuple[bytes, tuple[tuple[str, str], ...]]
_AMENDED, _IDS = itemgetter(0), itemgetter(1)


class _Runs(dict[bytes, _RunEntry]):
    """Run text -> its entry, worked out by the fast path once per snapshot of names."""

    def __init__(self, names: Names):
        super().__init__()
        self.names = names

    def __missing__(self, text: bytes) -> _RunEntry:
        amended = _amend_fast(text, self.names.members, insertions_for(self.names))
        entry = (amended.body, tuple(chain.from_iterable(
            [id_member] * times for id_member, times in amended.occurrences.items())))
        if len(self) < MAX_REMEMBERED_MEMBERS:
            self[text] = entry
        return entry


def _run_table(names: Names) -> _Runs:
    return _kept_with(names, "runs", lambda: _Runs(names))


_WS_RE = re.compile(r"[ \t\n\r]*")
_scan_value = STRICT_DECODER.scan_once


class _ExactWalk:
    """Finds every id member with the standard library's scanner, position by position."""

    def __init__(self, text: str, known: Mapping[str, Mapping[str, Members]], result: Amended):
        self.text = text
        self.known = known
        self.result = result
        self.inserts: list[tuple[int, bytes]] = []

    def skip_ws(self, i: int) -> int:
        return _WS_RE.match(self.text, i).end()  # type: ignore[union-attr]

    def value(self, i: int) -> int:
        """Walk the value at i; return the index after it."""
        c = self.text[i]
        if c == "{":
            return self.object(i)
        if c == "[":
            return self.array(i)
        return _scan_value(self.text, i)[1]

    def array(self, i: int) -> int:
        i = self.skip_ws(i + 1)
        if self.text[i] == "]":
            return i + 1
        while True:
            i = self.skip_ws(self.value(i))
            if self.text[i] == "]":
                return i + 1
            i = self.skip_ws(i + 1)  # past the comma

    def object(self, i: int) -> int:
        text = self.text
        # Each id member: (its field, where the name member goes, the id, whitespace
        # around the colon, the comma and whitespace after it). A duplicated id key gets
        # a name member after each copy, as on the fast path; parsers keep the last of
        # both, so the name read is the id read's.
        ids: list[tuple[str, int, str | None, str, str, str | None]] = []
        keys: set[str] = set()
        i = self.skip_ws(i + 1)
        if text[i] == "}":
            return i + 1
        while True:
            key, i = scanstring(text, i + 1)
            colon = self.skip_ws(i)
            value_start = self.skip_ws(colon + 1)
            value_end = self.value(value_start)
            keys.add(key)
            if key in NAME_FIELD_FOR_ID:
                id_value = (scanstring(text, value_start + 1)[0] if text[value_start] == '"'
                            else None)
                # The same layout rule as the fast path's pattern: a comma right after
                # the value (no space before it) is followed by the inserted member.
                following = None
                insert_at = value_end
                if text[value_end] == ",":
                    insert_at = self.skip_ws(value_end + 1)
                    following = text[value_end:insert_at]
                ids.append((key, insert_at, id_value, text[i:colon], text[colon + 1:value_start],
                            following))
            i = self.skip_ws(value_end)
            if text[i] == "}":
                break
            i = self.skip_ws(i + 1)  # past the comma
        for id_field, at, id_value, before, after, following in ids:
            # A field the object already has is never written again.
            members = tuple(m for m in _members_for(id_field, id_value, self.known)
                            if m[0].decode() not in keys)
            if not members:
                continue
            _tally(self.result, id_field, id_value, self.known)
            self.inserts.append((at, _layout(
                members, before.encode(), after.encode(),
                following.encode() if following is not None else None,
            )))
        return i + 1


def _amend_exact(body: bytes, known: Mapping[str, Mapping[str, Members]]) -> Amended:
    result = Amended(body)
    text = body.decode("utf-8")
    walk = _ExactWalk(text, known, result)
    walk.value(walk.skip_ws(0))
    if walk.inserts:
        walk.inserts.sort(key=lambda insert: insert[0])
        pieces: list[bytes] = []
        done = 0
        for at, member in walk.inserts:
            # Decoding UTF-8 and encoding it again gives back the same bytes, so the
            # untouched parts stay byte-identical.
            pieces.append(text[done:at].encode("utf-8", "surrogatepass"))
            pieces.append(member)
            done = at
        pieces.append(text[done:].encode("utf-8", "surrogatepass"))
        result.body = b"".join(pieces)
    return result
