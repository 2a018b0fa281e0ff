"""Add names beside ids in a JSON body, changing nothing else, to the byte.

Parsing and re-serialising would quietly alter what OpenAI sent: number spellings
(``1e-7``, ``0.10``), precision beyond a double, ``\\u`` escapes, key order of duplicates,
whitespace. So the body is never re-serialised: every name is *inserted* into the
original bytes right after its id's value, in the formatting of the id's own member, and
every other byte stays where it was.

Which id fields there are, and what goes beside them, is the provider's ``FieldSet``
(OpenAI's unless told otherwise): everything derived from it (the pattern, the members
for null and unknown ids, the array passes' tables) is a ``Spelling`` (insertion.py),
made once.

Three ways to find the insertion points, with identical results; this module picks one:

- for a large body with no backslash, array passes (runs.py) find the runs of adjacent
  id members; each distinct run text is amended once by the fast path and the
  body copied around the runs. A usage page of 31,000 rows has a few thousand distinct
  runs, so this is several times faster than a regex pass over the whole body;
- the fast path (fast_path.py), one regular-expression pass over the bytes. In valid
  JSON a quote that is not escaped and is followed by ``api_key_id"`` and a colon can
  only open an object key, so each match is a real member. It applies when the body has
  no ``\\u`` escape (which could spell a key another way), no name field already, and
  every id is a string or null;
- the exact path (exact.py), a member-by-member walk with the standard library's JSON
  scanner, for everything else (rare in practice, and always correct).

Pure: no I/O, no clock, no Twisted.
"""

from __future__ import annotations

from collections.abc import Collection

from orgproxy.body.exact import amend_exact
from orgproxy.body.fast_path import amend_fast, amend_runs, fast_path_applies, insertions_for
from orgproxy.body.insertion import OPENAI, Amended, NeedsExactPath, Spelling, spelling_for
from orgproxy.body.validate import is_json
from orgproxy.fields import OPENAI_FIELDS, FieldSet
from orgproxy.snapshot import Names


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
            amended = amend_runs(body, names, spelling)
            if amended is not None:
                return amended
        except NeedsExactPath:
            return _exact_or_as_is(body, names, spelling)
    if not has_backslash or fast_path_applies(body, spelling):
        try:
            return amend_fast(body, spelling.members_of(names), insertions_for(names, spelling), spelling)
        except NeedsExactPath:
            pass
    return _exact_or_as_is(body, names, spelling)


def _exact_or_as_is(body: bytes, names: Names, spelling: Spelling) -> Amended:
    try:
        return amend_exact(body, spelling.members_of(names), spelling)
    except RecursionError:
        # Nesting deeper than Python's stack: valid, but not worth a special walker.
        return Amended(body)


# Below this size the array passes' fixed cost (a few dozen numpy calls) is more than the
# regex pass they replace.
RUNS_MIN_BYTES = 16_384
