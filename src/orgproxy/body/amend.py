"""Add names beside ids in a JSON body, changing nothing else, to the byte.

Parsing and re-serialising would quietly alter what OpenAI sent: number spellings
(``1e-7``, ``0.10``), precision beyond a double, ``\\u`` escapes, key order of duplicates,
whitespace. So the body is never re-serialised: every name is *inserted* into the
original bytes right after its id's value, in the formatting of the id's own member, and
every other byte stays where it was.

Which id fields there are, and what goes beside them, is the provider's ``FieldSet``
(OpenAI's unless told otherwise): everything derived from it (the pattern, the members
for null and unknown ids, the array passes' tables) is a ``Spelling``, made once.

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
from collections.abc import Callable, Collection, Mapping
from collections import Counter
from functools import cache
from itertools import chain
from operator import itemgetter
from dataclasses import dataclass, field
from json.decoder import scanstring
from typing import TypeVar, cast

from orgproxy.fields import OPENAI_FIELDS, FieldSet
from orgproxy.snapshot import Members, Names, encode_json_string
from orgproxy.body.runs import FieldTable, cut, id_member_runs
from orgproxy.body.validate import STRICT_DECODER, is_json

_Kept = TypeVar("_Kept")
UNKNOWN = "unknown"
_UNKNOWN_JSON = json.dumps(UNKNOWN).encode()
_NULL_JSON = b"null"



@cache
def _field_table(fields: FieldSet) -> FieldTable:
    return FieldTable(fields.name_field_for_id, fields.added_fields)


class Spelling:
    """What amending derives from one provider's field set, and from which of its nulls
    this answer names (see ``FieldSet.null_names``): made once, kept for the process."""

    def __init__(self, fields: FieldSet, named_nulls: frozenset[str]):
        self.fields = fields
        self.name_field_for_id = fields.name_field_for_id
        id_fields = tuple(fields.name_field_for_id)
        # An id member: key, the whitespace around its colon, a simple string or null (a
        # missing value group means something else: the exact path), and the comma and
        # whitespace after it, which the inserted member copies so that it sits in the
        # body's own layout. The fields the proxy adds are matched too: finding one
        # already in a body (the same pass, rather than a search of its own) sends the
        # body to the exact path, which never writes a field twice.
        self.id_member = re.compile(
            rb'"(' + b"|".join(f.encode() for f in (*id_fields, *fields.added_fields))
            + rb')"([ \t\n\r]*):([ \t\n\r]*)(?:"([^"\\]*)"|(null))?(,[ \t\n\r]*)?'
        )
        self.null_members: dict[str, Members] = {
            f: ((n.encode(), encode_json_string(fields.null_names[f]) if f in named_nulls else _NULL_JSON),)
            for f, n in fields.name_field_for_id.items()}
        self.unknown_members: dict[str, Members] = {
            f: ((n.encode(), _UNKNOWN_JSON),) for f, n in fields.name_field_for_id.items()}
        self.escaped_id_keys = (b"\\u",) + tuple(b'\\"%s"' % f.encode() for f in id_fields)
        self.table = _field_table(fields)
        # Where the work kept with a snapshot of names goes (see _kept_with): OpenAI's
        # plain answers keep the names they always had.
        suffix = "" if fields is OPENAI_FIELDS and not named_nulls else \
            f":{fields.provider}:{','.join(sorted(named_nulls))}"
        self.insertions_key, self.runs_key = "insertions" + suffix, "runs" + suffix

    def members_of(self, names: Names) -> Mapping[str, Mapping[str, Members]]:
        return names.members if self.fields is OPENAI_FIELDS else names.members_for(self.fields)


@cache
def spelling_for(fields: FieldSet, named_nulls: frozenset[str] = frozenset()) -> Spelling:
    """The spelling of ``fields``; ``named_nulls`` are the id fields whose null gets the
    provider's name for it (an answer grouped by them)."""
    return Spelling(fields, named_nulls)


OPENAI = spelling_for(OPENAI_FIELDS)


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
    # (id field, "named" or "unknown") -> how many string ids: what the metrics count.
    by_field: dict[tuple[str, str], int] = field(default_factory=dict)


class _NeedsExactPath(Exception):
    """The fast path met something it does not handle; the exact path will."""


def amend_json(body: bytes, names: Names, fields: FieldSet = OPENAI_FIELDS,
               named_nulls: Collection[str] = ()) -> Amended | None:
    """``amend_valid_json`` for a body not yet validated: None when it is not valid JSON."""
    return amend_valid_json(body, names, fields, named_nulls) if is_json(body) else None


def amend_valid_json(body: bytes, names: Names, fields: FieldSet = OPENAI_FIELDS,
                     named_nulls: Collection[str] = ()) -> Amended:
    """The body, which must be valid JSON (see ``validate.is_json``), with a name beside every id.

    Every object at any depth with ``api_key_id`` gets ``api_key_name`` (likewise
    ``project_id``/``project_name`` and ``user_id``/``user_name``, or whatever the id
    fields of ``fields`` are): the mapped name, ``"unknown"`` for a string id the map
    lacks, ``null`` for any other id, except that a null id of a field in
    ``named_nulls`` gets the provider's name for it (Anthropic's "Default" workspace).
    An object that already has the name field keeps it as it is.
    """
    spelling = OPENAI if fields is OPENAI_FIELDS and not named_nulls else spelling_for(fields, frozenset(named_nulls))
    has_backslash = b"\\" in body
    if not has_backslash and len(body) >= RUNS_MIN_BYTES:
        try:
            amended = _amend_runs(body, names, spelling)
            if amended is not None:
                return amended
        except _NeedsExactPath:
            return _amend_exact_or_as_is(body, names, spelling)
    if not has_backslash or _fast_path_applies(body, spelling):
        try:
            return _amend_fast(body, spelling.members_of(names), insertions_for(names, spelling), spelling)
        except _NeedsExactPath:
            pass
    return _amend_exact_or_as_is(body, names, spelling)


def _amend_exact_or_as_is(body: bytes, names: Names, spelling: Spelling) -> Amended:
    try:
        return _amend_exact(body, spelling.members_of(names), spelling)
    except RecursionError:
        # Nesting deeper than Python's stack: valid, but not worth a special walker.
        return Amended(body)


# Below this size the array passes' fixed cost (a few dozen numpy calls) is more than the
# regex pass they replace.
RUNS_MIN_BYTES = 16_384


def _fast_path_applies(body: bytes, spelling: Spelling = OPENAI) -> bool:
    # One C-speed search for a backslash: usage pages have none at all.
    return not (b"\\" in body and any(spoiler in body for spoiler in spelling.escaped_id_keys))


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


def _members_for(id_field: str, id_value: str | None, known: Mapping[str, Mapping[str, Members]],
                 spelling: Spelling) -> Members:
    if id_value is None:
        return spelling.null_members[id_field]
    return known.get(id_field, {}).get(id_value) or spelling.unknown_members[id_field]


def _tally(result: Amended, id_field: str, id_value: str | None,
           known: Mapping[str, Mapping[str, Members]], times: int = 1) -> None:
    if id_value is not None:  # (a null id is an ungrouped dimension: nothing to report)
        _tally_all(result, {(id_field, id_value): times}, known)


_NOTHING_KNOWN: Mapping[str, Members] = {}


def _tally_all(result: Amended, counts: Mapping[tuple[str, str], int],
               known: Mapping[str, Mapping[str, Members]]) -> None:
    """Add ``counts`` ((id field, string id) -> times) to what ``result`` found: one loop
    over the distinct ids of a page, its body written out here rather than a call per id
    (a medium page has a few hundred)."""
    if result.occurrences:
        occurrences = result.occurrences
        for key, times in counts.items():
            occurrences[key] = occurrences.get(key, 0) + times
    else:
        result.occurrences = dict(counts)
    by_field, unknown_ids = result.by_field, result.unknown_ids
    named = unknown = 0
    for (id_field, id_value), times in counts.items():
        if id_value in known.get(id_field, _NOTHING_KNOWN):
            named += times
            tally = (id_field, "named")
        else:
            unknown += times
            unknown_ids.setdefault(id_value, id_field)
            tally = (id_field, "unknown")
        by_field[tally] = by_field.get(tally, 0) + times
    result.named += named
    result.unknown += unknown


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

    def __init__(self, known: Mapping[str, Mapping[str, Members]], spelling: Spelling = OPENAI):
        super().__init__()
        self.known = known
        self.spelling = spelling

    def __missing__(self, text: bytes) -> tuple[bytes, str, str | None]:
        spelling = self.spelling
        match = spelling.id_member.fullmatch(text)
        assert match is not None
        id_field, before, after, raw_id, null, following = match.groups()
        field_name = id_field.decode()
        if field_name not in spelling.name_field_for_id:
            raise _NeedsExactPath  # a field the proxy adds is there already
        if raw_id is None and null is None:
            raise _NeedsExactPath  # a number, object or array as the id, or an escape in it
        id_value = None if raw_id is None else raw_id.decode("utf-8")
        members = _members_for(field_name, id_value, self.known, spelling)
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


def insertions_for(names: Names, spelling: Spelling = OPENAI) -> _Insertions:
    """The snapshot's own table of worked-out insertions (one per spelling)."""
    return _kept_with(names, spelling.insertions_key, lambda: _Insertions(spelling.members_of(names), spelling))


def _amend_fast(body: bytes, known: Mapping[str, Mapping[str, Members]],
                insertions: _Insertions | None = None, spelling: Spelling = OPENAI) -> Amended:
    table = _Insertions(known, spelling) if insertions is None else insertions
    seen: list[bytes] = []
    remember = seen.append

    def insert(match: re.Match[bytes]) -> bytes:
        text = match[0]
        remember(text)
        return table[text][0]

    amended = spelling.id_member.sub(insert, body)
    result = Amended(amended if seen else body)
    if seen:
        counts: dict[tuple[str, str], int] = {}
        for text, times in Counter(seen).items():
            _, id_field, id_value = table[text]
            if id_value is not None:
                key = (id_field, id_value)
                counts[key] = counts.get(key, 0) + times
        _tally_all(result, counts, known)
    return result


def _amend_runs(body: bytes, names: Names, spelling: Spelling = OPENAI) -> Amended | None:
    """The array-pass route (see the module's docstring); None where runs.py declines."""
    bounds = id_member_runs(body, spelling.table)
    if bounds is None:
        return None
    if not bounds.size:
        return Amended(body)
    # Even pieces are copied as they are; odd ones are runs of id members.
    pieces = cut(body, bounds)
    runs = pieces[1::2]
    table = _run_table(names, spelling)
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
    _tally_all(result, occurrences, spelling.members_of(names))
    return result


# A run's entry: (its text amended, the (id field, id) of each string id in it)
_RunEntry = tuple[bytes, tuple[tuple[str, str], ...]]
_AMENDED, _IDS = itemgetter(0), itemgetter(1)


class _Runs(dict[bytes, _RunEntry]):
    """Run text -> its entry, worked out by the fast path once per snapshot of names."""

    def __init__(self, names: Names, spelling: Spelling):
        super().__init__()
        self.names = names
        self.spelling = spelling

    def __missing__(self, text: bytes) -> _RunEntry:
        spelling = self.spelling
        amended = _amend_fast(text, spelling.members_of(self.names), insertions_for(self.names, spelling), spelling)
        entry = (amended.body, tuple(chain.from_iterable(
            [id_member] * times for id_member, times in amended.occurrences.items())))
        if len(self) < MAX_REMEMBERED_MEMBERS:
            self[text] = entry
        return entry


def _run_table(names: Names, spelling: Spelling) -> _Runs:
    return _kept_with(names, spelling.runs_key, lambda: _Runs(names, spelling))


_WS_RE = re.compile(r"[ \t\n\r]*")
_scan_value = STRICT_DECODER.scan_once


class _ExactWalk:
    """Finds every id member with the standard library's scanner, position by position."""

    def __init__(self, text: str, known: Mapping[str, Mapping[str, Members]], result: Amended,
                 spelling: Spelling = OPENAI):
        self.text = text
        self.known = known
        self.result = result
        self.spelling = spelling
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
            if key in self.spelling.name_field_for_id:
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
            members = tuple(m for m in _members_for(id_field, id_value, self.known, self.spelling)
                            if m[0].decode() not in keys)
            if not members:
                continue
            _tally(self.result, id_field, id_value, self.known)
            self.inserts.append((at, _layout(
                members, before.encode(), after.encode(),
                following.encode() if following is not None else None,
            )))
        return i + 1


def _amend_exact(body: bytes, known: Mapping[str, Mapping[str, Members]], spelling: Spelling = OPENAI) -> Amended:
    result = Amended(body)
    text = body.decode("utf-8")
    walk = _ExactWalk(text, known, result, spelling)
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
