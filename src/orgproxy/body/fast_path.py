"""The fast path of amending: one regular-expression pass over the bytes, and for a large
body the runs of id members (``runs.py``), each distinct run amended once by that pass.
Each distinct id member, and each distinct run, is worked out once per snapshot of names.
Pure."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from itertools import chain
from operator import itemgetter

from orgproxy.body.insertion import OPENAI, Amended, NeedsExactPath, Spelling, kept_with, layout, members_for, tally_all
from orgproxy.body.runs import cut, id_member_runs
from orgproxy.snapshot import Members, Names


def fast_path_applies(body: bytes, spelling: Spelling = OPENAI) -> bool:
    # One C-speed search for a backslash: usage pages have none at all.
    return not (b"\\" in body and any(spoiler in body for spoiler in spelling.escaped_id_keys))


# Distinct id members remembered per snapshot: pages repeat a few hundred, and a flood
# of distinct ids must not grow memory without bound.
MAX_REMEMBERED_MEMBERS = 50_000


class Insertions(dict[bytes, tuple[bytes, str, str | None]]):
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
            raise NeedsExactPath  # a field the proxy adds is there already
        if raw_id is None and null is None:
            raise NeedsExactPath  # a number, object or array as the id, or an escape in it
        id_value = None if raw_id is None else raw_id.decode("utf-8")
        members = members_for(field_name, id_value, self.known, spelling)
        entry = (text + layout(members, before, after, following), field_name, id_value)
        if len(self) < MAX_REMEMBERED_MEMBERS:
            self[text] = entry
        return entry


def insertions_for(names: Names, spelling: Spelling = OPENAI) -> Insertions:
    """The snapshot's own table of worked-out insertions (one per spelling)."""
    return kept_with(names, spelling.insertions_key, lambda: Insertions(spelling.members_of(names), spelling))


def amend_fast(body: bytes, known: Mapping[str, Mapping[str, Members]],
                insertions: Insertions | None = None, spelling: Spelling = OPENAI) -> Amended:
    table = Insertions(known, spelling) if insertions is None else insertions
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
        tally_all(result, counts, known)
    return result


def amend_runs(body: bytes, names: Names, spelling: Spelling = OPENAI) -> Amended | None:
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
    tally_all(result, occurrences, spelling.members_of(names))
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
        amended = amend_fast(text, spelling.members_of(self.names), insertions_for(self.names, spelling), spelling)
        entry = (amended.body, tuple(chain.from_iterable(
            [id_member] * times for id_member, times in amended.occurrences.items())))
        if len(self) < MAX_REMEMBERED_MEMBERS:
            self[text] = entry
        return entry


def _run_table(names: Names, spelling: Spelling) -> _Runs:
    return kept_with(names, spelling.runs_key, lambda: _Runs(names, spelling))
