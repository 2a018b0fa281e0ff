"""Answers the upstream cannot give: rows grouped by name, and names in place of ids.

Keys get rotated: "checkout-service-production" may have had three keys this year, and
the question is what *checkout* cost. OpenAI groups only by id, so the proxy asks it for
the id and merges, within each bucket, the rows whose ids share a name and whose other
non-numeric fields are all equal: numbers are summed, and the ids merged are listed.

Two page shapes: buckets holding their ``results`` (OpenAI's pages, Anthropic's legacy
reports), where the ids sit in each result; and flat rows, each with its bucket's
``starting_at``/``ending_at`` and its ids in a ``group`` object (Anthropic's Usage and Cost
Analytics API), where rows of one bucket merge (their bucket fields are equal) and the
group's other dimensions must be equal too.

Money is exact: every sum is decimal arithmetic on the amounts as sent (money.py). An
amount the provider's ``FieldSet`` names (``decimal_measures``: OpenAI's ``amount.value``,
Anthropic's cents) may be a decimal string, summed into a string, or a number; every
other number that is not an integer is summed as a decimal too, and written with the
digits its sum has (0.1 + 0.2 is 0.3). A body holding a number longer than a double
carries is read as decimals throughout, so nothing is lost in the reading either.

Pure: plain data in, plain data out. Merging changes the page, so a merged page is
serialised anew (compactly); pages without grouping by name keep their bytes.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Collection, Mapping
from decimal import Decimal
from functools import cache
from typing import Any

import orjson

from orgproxy.body.jsonvalues import refuse_constant
from orgproxy.fields import ALL_ID_FIELDS, OPENAI_FIELDS, FieldSet
from orgproxy.money import NotExact, add, decimal_text, exact, plain
from orgproxy.names.snapshot import Names

# The list of merged ids each grouped id field gets: api_key_id -> api_key_ids.
IDS_FIELD = {id_field: id_field + "s" for id_field in ALL_ID_FIELDS}
# Where an analytics row holds its ids (and the rest of its dimensions).
GROUP = "group"
_NUMBER = object()  # stands for any number in a row's shape
_AMOUNT = object()  # a measure's place in the tree of measures
_LARGEST = Decimal(sys.float_info.max)
Measures = Mapping[str, Any]  # member -> _AMOUNT, or the measures inside it


def regroup(body: bytes, grouped: Collection[str], names: Names, replace: bool,
            fields: FieldSet = OPENAI_FIELDS) -> bytes | None:
    """The amended JSON ``body`` merged by name over the ``grouped`` id fields and, when
    ``replace``, with names written into the id fields; None when it does not parse, or
    when the result has a number no double holds (a sum beyond a double's range, or
    beyond a thousand digits), or a member name no UTF-8 can spell (a lone surrogate)."""
    page = _parse(body)
    if page is _INVALID:
        return None
    if grouped:
        try:
            merge_by_name(page, grouped, names, fields)
        except NotExact:
            return None
    if replace:
        replace_ids(page, names, fields)
    return _serialise(page)


_INVALID = object()
# A number of 16 significant digits or more, which a double may not carry exactly
# (and integers beyond 64 bits, which orjson reads as doubles): such a body is read by
# the standard library, numbers with a fraction or exponent as Decimal.
_LONG_NUMBER = re.compile(rb"[0-9.]{17}")


def _parse(body: bytes) -> Any:
    if not _LONG_NUMBER.search(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # lone surrogate escapes, numbers beyond a double: the standard library
    try:
        return json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _INVALID


def _serialise(page: Any) -> bytes | None:
    try:
        return orjson.dumps(page, default=_json_number)
    except TypeError:  # an integer beyond 64 bits, a lone surrogate, a sum beyond a double
        pass
    try:
        return orjson.dumps(_spelled(page), default=_json_number)
    except TypeError:
        return None


def _json_number(value: Any) -> orjson.Fragment:
    """A Decimal (a sum, or a number read as one) written with its own digits."""
    if isinstance(value, Decimal) and value.is_finite() and abs(value) <= _LARGEST:
        return orjson.Fragment(str(value).encode("ascii"))
    raise TypeError(f"no JSON number a double holds: {value!r}")


def _spelled(value: Any) -> Any:
    """The page with what orjson cannot write spelled out as JSON text: integers beyond
    64 bits, and strings holding a lone surrogate (as \\u escapes)."""
    if isinstance(value, dict):
        return {k: _spelled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_spelled(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**64:
        return orjson.Fragment(str(value).encode("ascii"))
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return orjson.Fragment(json.dumps(value).encode("ascii"))
    return value


def merge_by_name(page: Any, grouped: Collection[str], names: Names, fields: FieldSet = OPENAI_FIELDS) -> int:
    """Merge each bucket's rows in place; how many rows were merged into others."""
    if not grouped or not isinstance(page, dict) or not isinstance(page.get("data"), list):
        return 0
    data = page["data"]
    if not any(isinstance(bucket, dict) and isinstance(bucket.get("results"), list) for bucket in data):
        # Rows of their own, with their ids in a group (Anthropic's analytics).
        page["data"] = merge_rows(data, grouped, names, fields, holder=GROUP)
        return len(data) - len(page["data"])
    merged = 0
    for bucket in data:
        if isinstance(bucket, dict) and isinstance(bucket.get("results"), list):
            before = len(bucket["results"])
            bucket["results"] = merge_rows(bucket["results"], grouped, names, fields)
            merged += before - len(bucket["results"])
    return merged


def merge_rows(rows: list[Any], grouped: Collection[str], names: Names,
               fields: FieldSet = OPENAI_FIELDS, holder: str | None = None) -> list[Any]:
    """Rows with the same names and the same other non-numeric fields, merged; in order of
    first appearance. The ids are in each row itself, or in its member ``holder`` (whose
    other members must then be equal, numbers too: they are dimensions, not measures). A
    row whose id nobody can name, or that lacks a grouped id field altogether, is never
    merged."""
    merged: list[Any] = []
    first_of: dict[Any, dict[str, Any]] = {}
    own_fields = _own_fields(grouped, fields)
    measures = _measures(fields)
    for row in rows:
        if not isinstance(row, dict) or (holder is not None and not isinstance(row.get(holder), dict)):
            merged.append(row)
            continue
        row = _with_id_lists(row, grouped, holder)
        key = _key(row, grouped, names, own_fields, measures, holder)
        target = first_of.get(key) if key is not None else None
        if target is None:
            if key is not None:
                first_of[key] = row
            merged.append(row)
        else:
            _add_into(target, row, grouped, own_fields, measures, fields, holder)
    return merged


def _own_fields(grouped: Collection[str], fields: FieldSet) -> frozenset[str]:
    """The fields that belong to the grouped ids: the ids, their names, extras, id lists."""
    own: set[str] = set()
    for id_field in grouped:
        own |= {id_field, fields.name_field_for_id[id_field], IDS_FIELD[id_field]}
        own |= set(fields.added_beside[id_field])
    return frozenset(own)


@cache
def _measures(fields: FieldSet) -> Measures:
    """The provider's amounts as a tree: {"amount": {"value": _AMOUNT}} for OpenAI's."""
    tree: dict[str, Any] = {}
    for path in fields.decimal_measures:
        node = tree
        for member in path[:-1]:
            node = node.setdefault(member, {})
        node[path[-1]] = _AMOUNT
    return tree


def _with_id_lists(row: dict[str, Any], grouped: Collection[str], holder: str | None) -> dict[str, Any]:
    """A copy of the row (and of its ``holder``) with ``api_key_ids`` (etc.) right after
    ``api_key_id``: the id in a list, an empty list for a null id, nothing where the row
    has no such field."""
    if holder is not None:
        return {**row, holder: _with_id_lists(row[holder], grouped, None)}
    out: dict[str, Any] = {}
    for field, value in row.items():
        out[field] = value
        if field in grouped and IDS_FIELD[field] not in row:
            out[IDS_FIELD[field]] = [value] if isinstance(value, str) else []
    return out


def _key(row: dict[str, Any], grouped: Collection[str], names: Names, own_fields: frozenset[str],
         measures: Measures, holder: str | None) -> Any:
    """What rows must share to be merged, or None for a row that stays alone."""
    ids = row if holder is None else row[holder]
    identity = []
    for id_field in sorted(grouped):
        if id_field not in ids or not isinstance(ids[IDS_FIELD[id_field]], list):
            # The endpoint cannot group by it (code_interpreter_sessions has no api_key_id),
            # or the upstream sent an id list of its own that is not a list: not ours to merge.
            return None
        id_value = ids[id_field]
        if id_value is None:
            identity.append(None)  # a null id: the Console's, or a dimension left ungrouped
        elif isinstance(id_value, str) and id_value in names.by_field.get(id_field, {}):
            identity.append(names.by_field[id_field][id_value])
        else:
            return None  # unknown: two unknown keys are not the same thing
    others = {k: v for k, v in ids.items() if k not in own_fields}
    if holder is None:
        return tuple(identity), _shape(others, measures)
    rest = {k: v for k, v in row.items() if k != holder}
    return tuple(identity), _shape(rest, measures), _shape(others, {}, numbers_alike=False)


def _is_number(value: Any) -> bool:
    """A JSON number as read here: an int or float (not a bool), or a Decimal."""
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _shape(value: Any, measures: Any = None, numbers_alike: bool = True) -> Any:
    """A hashable picture of a value in which every number looks the same (and, where
    ``measures`` says an amount is, a decimal string too)."""
    if numbers_alike and (_is_number(value) or (measures is _AMOUNT and decimal_text(value) is not None)):
        return _NUMBER
    if isinstance(value, dict):
        inside = measures if isinstance(measures, Mapping) else {}
        return ("{}", tuple(sorted((k, _shape(v, inside.get(k), numbers_alike)) for k, v in value.items())))
    if isinstance(value, list):
        return ("[]", tuple(_shape(v, None, numbers_alike) for v in value))
    if isinstance(value, Decimal):
        return ("number", value)
    return (type(value).__name__, value)


def _add_into(target: dict[str, Any], row: dict[str, Any], grouped: Collection[str],
              own_fields: frozenset[str], measures: Measures, fields: FieldSet, holder: str | None) -> None:
    for field, value in row.items():
        if field != holder and (holder is not None or field not in own_fields):
            target[field] = _sum(target[field], value, measures.get(field))
    ids_target, ids_row = (target, row) if holder is None else (target[holder], row[holder])
    for id_field in grouped:
        ids = ids_target[IDS_FIELD[id_field]]
        for id_value in ids_row[IDS_FIELD[id_field]]:
            if id_value not in ids:
                ids.append(id_value)
        ids_target[id_field] = ids[0] if len(ids) == 1 else None
        for added in fields.added_beside[id_field]:
            if ids_target.get(added) != ids_row.get(added):
                ids_target[added] = None  # several keys: no one redacted value or email


def _sum(a: Any, b: Any, measures: Any = None) -> Any:
    """Numbers added exactly (integers stay integers, others become Decimal); amounts
    where ``measures`` says; equal shapes otherwise, added inside."""
    if measures is _AMOUNT and (isinstance(a, str) or isinstance(b, str)):
        return _amount_sum(a, b)
    if _is_number(a):
        if isinstance(a, int) and isinstance(b, int):
            return a + b
        return add(exact(a), exact(b))
    if isinstance(a, dict):
        inside = measures if isinstance(measures, Mapping) else {}
        return {k: _sum(v, b[k], inside.get(k)) for k, v in a.items()}
    if isinstance(a, list):
        return [_sum(x, y) for x, y in zip(a, b)]
    return a


def _amount_sum(a: Any, b: Any) -> Any:
    """Two amounts, either a decimal string or a number, added exactly: into a string
    when the first is one (``"1607.9417"``, never in exponent form), else a number. ``a``
    as it is when either is no amount (their shape kept them equal)."""
    # ``a`` may be a sum already, longer than any one amount.
    x = decimal_text(a, longest=None) if isinstance(a, str) else exact(a) if _is_number(a) else None
    y = decimal_text(b) if isinstance(b, str) else exact(b) if _is_number(b) else None
    if x is None or y is None:
        return a
    total = add(x, y)
    return plain(total) if isinstance(a, str) else total


def replace_ids(value: Any, names: Names, fields: FieldSet = OPENAI_FIELDS) -> None:
    """Write each known name into its id field, keeping the id in ``<field>_original``
    (for admin code that reads only ``api_key_id``). Unknown and null ids stay as they are."""
    if isinstance(value, list):
        for item in value:
            replace_ids(item, names, fields)
        return
    if not isinstance(value, dict):
        return
    for child in value.values():
        replace_ids(child, names, fields)
    id_fields = fields.name_field_for_id
    if not any(isinstance(value.get(f), str) and value[f] in names.by_field.get(f, {})
               for f in id_fields):
        return
    rebuilt: dict[str, Any] = {}
    for field, item in value.items():
        known = names.by_field.get(field, {}) if field in id_fields else {}
        if isinstance(item, str) and item in known and field + "_original" not in value:
            rebuilt[field] = known[item]
            rebuilt[field + "_original"] = item
        else:
            rebuilt[field] = item
    value.clear()
    value.update(rebuilt)
