"""What amending puts beside an id and what it counts on the way, shared by the fast path
(``fast_path.py``) and the exact walk (``exact.py``): the provider's spelling (its id
fields, their pattern, the members for a null or unknown id), the members laid out like
the id's own, and the tally of named and unknown ids. Pure."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar, cast

from orgproxy.body.runs import FieldTable
from orgproxy.fields import OPENAI_FIELDS, FieldSet
from orgproxy.snapshot import Members, Names, encode_json_string

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
        # Where the work kept with a snapshot of names goes (see kept_with): OpenAI's
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


class NeedsExactPath(Exception):
    """The fast path met something it does not handle; the exact path will."""


def layout(members: Members, before_colon: bytes, after_colon: bytes, following: bytes | None) -> bytes:
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


def members_for(id_field: str, id_value: str | None, known: Mapping[str, Mapping[str, Members]],
                 spelling: Spelling) -> Members:
    if id_value is None:
        return spelling.null_members[id_field]
    return known.get(id_field, {}).get(id_value) or spelling.unknown_members[id_field]


def tally(result: Amended, id_field: str, id_value: str | None,
           known: Mapping[str, Mapping[str, Members]], times: int = 1) -> None:
    if id_value is not None:  # (a null id is an ungrouped dimension: nothing to report)
        tally_all(result, {(id_field, id_value): times}, known)


_NOTHING_KNOWN: Mapping[str, Members] = {}


def tally_all(result: Amended, counts: Mapping[tuple[str, str], int],
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


def kept_with(names: Names, key: str, make: Callable[[], _Kept]) -> _Kept:
    """Work derived from a snapshot of names, made on first use and kept with it."""
    kept = names.cache.get(key)
    if kept is None:
        kept = names.cache[key] = make()
    return cast(_Kept, kept)
