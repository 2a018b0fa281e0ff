"""Answers OpenAI cannot give: rows grouped by name, and names in place of ids.

Keys get rotated: "checkout-service-production" may have had three keys this year, and
the question is what *checkout* cost. OpenAI groups only by id, so the proxy asks it for
the id and merges, within each bucket, the rows whose ids share a name and whose other
non-numeric fields are all equal: numbers are summed, and the ids merged are listed.

Which fields are ids, names and their extras is the provider's ``FieldSet`` (OpenAI's
unless told otherwise). Anthropic's cost ``amount`` is a decimal string in cents: rows
are merged whatever their amounts, and the amounts summed exactly, as decimals, into a
string again.

Pure: plain data in, plain data out. Merging changes the page, so a merged page is
serialised anew (compactly); pages without grouping by name keep their bytes.
"""

from __future__ import annotations

import decimal
import json
import math
import re
from collections.abc import Collection
from typing import Any

import orjson

from orgproxy.body.jsonvalues import is_number, refuse_constant
from orgproxy.fields import ALL_ID_FIELDS, OPENAI_FIELDS, FieldSet
from orgproxy.names.snapshot import Names

# The list of merged ids each grouped id field gets: api_key_id -> api_key_ids.
IDS_FIELD = {id_field: id_field + "s" for id_field in ALL_ID_FIELDS}
_NUMBER = object()  # stands for any number in a row's shape
# An amount as a decimal string: plain notation, at most 100 characters, so that sums of
# them always fit the exact context below (a thousand digits, any rounding an error).
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_DECIMAL_MAX = 100
_EXACT = decimal.Context(prec=1000, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])


def regroup(body: bytes, grouped: Collection[str], names: Names, replace: bool,
            fields: FieldSet = OPENAI_FIELDS) -> bytes | None:
    """The amended JSON ``body`` merged by name over the ``grouped`` id fields and, when
    ``replace``, with names written into the id fields; None when it does not parse, or
    when the result has a number JSON cannot hold (a sum beyond a double's range)."""
    page = _parse(body)
    if page is _INVALID:
        return None
    if grouped:
        merge_by_name(page, grouped, names, fields)
    if replace:
        replace_ids(page, names, fields)
    return _serialise(page)


_INVALID = object()
# orjson reads integers beyond 64 bits as floats, losing digits: bodies with such long
# digit runs (rare) are read by the standard library, whose integers are exact.
_LONG_NUMBER = re.compile(rb"\d{19}")


def _parse(body: bytes) -> Any:
    if not _LONG_NUMBER.search(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # lone surrogate escapes, numbers beyond a double: the standard library
    try:
        return json.loads(body.decode("utf-8"), parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _INVALID


def _serialise(page: Any) -> bytes | None:
    try:
        return orjson.dumps(page) if _finite(page) else None
    except TypeError:  # an integer beyond 64 bits
        pass
    try:
        text = json.dumps(page, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: its \u escape is still JSON
        return json.dumps(page, separators=(",", ":")).encode("ascii")


def _finite(value: Any) -> bool:
    """No NaN or infinity anywhere (orjson would write them as null)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def merge_by_name(page: Any, grouped: Collection[str], names: Names, fields: FieldSet = OPENAI_FIELDS) -> int:
    """Merge each bucket's results in place; how many rows were merged into others."""
    merged = 0
    if not grouped or not isinstance(page, dict) or not isinstance(page.get("data"), list):
        return 0
    for bucket in page["data"]:
        if isinstance(bucket, dict) and isinstance(bucket.get("results"), list):
            before = len(bucket["results"])
            bucket["results"] = merge_rows(bucket["results"], grouped, names, fields)
            merged += before - len(bucket["results"])
    return merged


def merge_rows(rows: list[Any], grouped: Collection[str], names: Names,
               fields: FieldSet = OPENAI_FIELDS) -> list[Any]:
    """Rows with the same names and the same other non-numeric fields, merged; in order of
    first appearance. A row whose id nobody can name, or that lacks a grouped id field
    altogether, is never merged."""
    merged: list[Any] = []
    first_of: dict[Any, dict[str, Any]] = {}
    own_fields = _own_fields(grouped, fields)
    for row in rows:
        if not isinstance(row, dict):
            merged.append(row)
            continue
        row = _with_id_lists(row, grouped)
        key = _key(row, grouped, names, own_fields, fields.decimal_measures)
        target = first_of.get(key) if key is not None else None
        if target is None:
            if key is not None:
                first_of[key] = row
            merged.append(row)
        else:
            _add_into(target, row, grouped, own_fields, fields)
    return merged


def _own_fields(grouped: Collection[str], fields: FieldSet) -> frozenset[str]:
    """The fields that belong to the grouped ids: the ids, their names, extras, id lists."""
    own: set[str] = set()
    for id_field in grouped:
        own |= {id_field, fields.name_field_for_id[id_field], IDS_FIELD[id_field]}
        own |= set(fields.added_beside[id_field])
    return frozenset(own)


def _with_id_lists(row: dict[str, Any], grouped: Collection[str]) -> dict[str, Any]:
    """A copy of the row with ``api_key_ids`` (etc.) right after ``api_key_id``: the id in
    a list, an empty list for a null id, nothing where the row has no such field."""
    out: dict[str, Any] = {}
    for field, value in row.items():
        out[field] = value
        if field in grouped and IDS_FIELD[field] not in row:
            out[IDS_FIELD[field]] = [value] if isinstance(value, str) else []
    return out


def _key(row: dict[str, Any], grouped: Collection[str], names: Names, own_fields: frozenset[str],
         decimal_measures: frozenset[str] = frozenset()) -> Any:
    """What rows must share to be merged, or None for a row that stays alone."""
    identity = []
    for id_field in sorted(grouped):
        if id_field not in row or not isinstance(row[IDS_FIELD[id_field]], list):
            # The endpoint cannot group by it (code_interpreter_sessions has no api_key_id),
            # or the upstream sent an id list of its own that is not a list: not ours to merge.
            return None
        id_value = row[id_field]
        if id_value is None:
            identity.append(None)  # a null id: a dimension OpenAI left ungrouped
        elif isinstance(id_value, str) and id_value in names.by_field.get(id_field, {}):
            identity.append(names.by_field[id_field][id_value])
        else:
            return None  # unknown: two unknown keys are not the same thing
    return tuple(identity), _shape({k: (_NUMBER if k in decimal_measures and _decimal(v) is not None else v)
                                    for k, v in row.items() if k not in own_fields})


def _decimal(value: Any, longest: int | None = _DECIMAL_MAX) -> decimal.Decimal | None:
    """A decimal string (``"123.45"``, at most ``longest`` characters) as a Decimal; None
    for anything else."""
    if isinstance(value, str) and (longest is None or len(value) <= longest) and _DECIMAL.fullmatch(value):
        return decimal.Decimal(value)
    return None


def _shape(value: Any) -> Any:
    """A hashable picture of a value in which every number looks the same."""
    if value is _NUMBER or is_number(value):
        return _NUMBER
    if isinstance(value, dict):
        return ("{}", tuple(sorted((k, _shape(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("[]", tuple(_shape(v) for v in value))
    return (type(value).__name__, value)


def _add_into(target: dict[str, Any], row: dict[str, Any], grouped: Collection[str],
              own_fields: frozenset[str], fields: FieldSet = OPENAI_FIELDS) -> None:
    for field, value in row.items():
        if field in own_fields:
            continue
        if field in fields.decimal_measures and isinstance(value, str):
            target[field] = _decimal_sum(target[field], value)
        else:
            target[field] = _sum(target[field], value)
    for id_field in grouped:
        ids = target[IDS_FIELD[id_field]]
        for id_value in row[IDS_FIELD[id_field]]:
            if id_value not in ids:
                ids.append(id_value)
        target[id_field] = ids[0] if len(ids) == 1 else None
        for added in fields.added_beside[id_field]:
            if target.get(added) != row.get(added):
                target[added] = None  # several keys: no one redacted value or email
    return None


def _sum(a: Any, b: Any) -> Any:
    """Numbers added (integers stay integers); equal shapes otherwise, added inside."""
    if is_number(a):
        return a + b
    if isinstance(a, dict):
        return {k: _sum(v, b[k]) for k, v in a.items()}
    if isinstance(a, list):
        return [_sum(x, y) for x, y in zip(a, b)]
    return a


def _decimal_sum(a: str, b: str) -> str:
    """Two decimal strings added exactly, written plainly (``"1607.9417"``, never in
    exponent form); ``a`` as it is when ``b`` is no decimal (its shape kept them equal)."""
    # ``a`` may be a sum already, longer than any one amount.
    x, y = _decimal(a, longest=None), _decimal(b)
    if x is None or y is None:
        return a
    return format(_EXACT.add(x, y), "f")


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
