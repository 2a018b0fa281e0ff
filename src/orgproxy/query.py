"""Rewrite names to ids in a query string before it goes upstream: ``group_by`` names,
and filters by name; and, for an upstream that wants them so, arrays in brackets.

Callers of the proxy may group by ``api_key_name``, ``project_name`` or ``user_name``
(for Anthropic, ``api_key_name``, ``workspace_name``, ...). The upstream knows only the
ids, so the upstream request must group by ``api_key_id``, ``project_id`` or ``user_id``
instead; the proxy puts the names beside the ids in the response later. Which names
there are is the provider's ``FieldSet`` (OpenAI's when none is given).

The rewrite works on the raw bytes of the query rather than on a parsed dict, because
everything that is not a rewritten ``group_by`` value must reach OpenAI exactly as the
caller sent it: page cursors contain ``=`` and ``%3D``, parameter order and repeated keys
matter, and re-encoding (``+`` versus ``%20``, case of hex digits) could change them.

Standard library only, and no I/O: this runs on every request.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from functools import cache
from types import MappingProxyType
from urllib.parse import quote_from_bytes, unquote_to_bytes

from orgproxy.fields import ID_FIELD_FOR_NAME, OPENAI_FIELDS, FieldSet

__all__ = ["GROUP_BY_NAME_TO_ID", "NAME_FILTERS", "UnknownName", "bracket_arrays", "ids_grouped_by",
           "name_filters", "names_grouped_by", "rewrite_group_by", "rewrite_name_filters"]

# Read-only, so that no caller can change what the proxy asks upstream for.
GROUP_BY_NAME_TO_ID: Mapping[str, str] = ID_FIELD_FOR_NAME


@cache
def _names_to_ids(fields: FieldSet) -> Mapping[bytes, bytes]:
    """A provider's group_by names and their ids, on bytes, because values are decoded to
    bytes (see _decode)."""
    names = MappingProxyType({name.encode("ascii"): id_.encode("ascii")
                              for name, id_ in fields.id_field_for_name.items()})
    assert all(name.endswith(_LITERAL_SUFFIX) for name in names), "pre-check is incomplete"
    return names


# Both spellings of the key: plain clients send ``group_by``, the official SDKs send
# ``group_by[]`` (often as ``group_by%5B%5D``, hence the comparison after decoding).
_GROUP_BY_KEYS: frozenset[bytes] = frozenset({b"group_by", b"group_by[]"})

# Every name ends in "_name"; the pre-check looks for that suffix.  Its plain spelling is
# caught by a substring test, the cheapest check there is.  Any of its characters may
# also arrive percent-encoded (hex digits in either case), which only this pattern sees;
# it is consulted only when the query contains a '%' at all.
_LITERAL_SUFFIX = b"_name"
_ENCODED_SUFFIX = re.compile(rb"(?:_|%5[fF])(?:n|%6[eE])(?:a|%61)(?:m|%6[dD])(?:e|%65)")


def _may_name(query: bytes) -> bool:
    """False only when no part of ``query`` can decode to a name: the cheap common case."""
    if _LITERAL_SUFFIX in query:
        return True
    return b"%" in query and _ENCODED_SUFFIX.search(query) is not None


def _decode(raw: bytes) -> bytes:
    """Decode application/x-www-form-urlencoded bytes ('+' is a space) to raw bytes.

    Bytes rather than str: a value that is not valid UTF-8 survives a rewrite of its part
    unchanged instead of turning into U+FFFD.
    """
    if b"%" not in raw and b"+" not in raw:
        return raw
    return unquote_to_bytes(raw.replace(b"+", b" "))


def _encode(values: list[bytes]) -> bytes:
    """Encode the values of a rewritten part, keeping commas literal so ``a,b`` stays ``a,b``."""
    return quote_from_bytes(b",".join(values), safe=",").encode("ascii")


def rewrite_group_by(query: bytes, fields: FieldSet = OPENAI_FIELDS) -> bytes:
    """The raw query string (the bytes after '?', without the '?') with group_by names replaced by ids.

    Every ``group_by`` or ``group_by[]`` value (split on commas after decoding) that is a
    name of ``fields`` (by default OpenAI's, GROUP_BY_NAME_TO_ID) becomes its id.  If
    anything was rewritten, group_by values are then de-duplicated across all group_by
    parts by first occurrence, and a part left with no values is dropped.  Parts whose values did not change keep their exact bytes;
    when nothing was rewritten, the very same object is returned.
    """
    if not _may_name(query):
        return query

    name_to_id = _names_to_ids(fields)
    parts: list[bytes] = query.split(b"&")
    # (index in parts, decoded values as sent, values with names mapped to ids)
    group_by_parts: list[tuple[int, list[bytes], list[bytes]]] = []
    rewritten = False
    for index, part in enumerate(parts):
        key, _, raw_value = part.partition(b"=")
        if _decode(key) not in _GROUP_BY_KEYS:
            continue
        # A bare ``group_by`` counts as one empty value, as parse_qsl(keep_blank_values=True)
        # sees it, so that de-duplication agrees with how the upstream will read it.
        values = _decode(raw_value).split(b",")
        mapped = [name_to_id.get(value, value) for value in values]
        rewritten = rewritten or mapped != values
        group_by_parts.append((index, values, mapped))

    if not rewritten:
        # Duplicates the caller sent on their own are the caller's business: leave them.
        return query

    # Asking upstream to group by the same field twice is at best redundant, and a name
    # beside its own id (api_key_name&api_key_id) becomes exactly that after mapping.
    seen: set[bytes] = set()
    removed: set[int] = set()
    for index, values, mapped in group_by_parts:
        kept: list[bytes] = []
        for value in mapped:
            if value not in seen:
                seen.add(value)
                kept.append(value)
        if not kept:
            removed.add(index)
        elif kept != values:
            # Only the value is re-encoded; the key keeps the caller's spelling and bytes.
            key = parts[index].partition(b"=")[0]
            parts[index] = key + b"=" + _encode(kept)

    return b"&".join(part for index, part in enumerate(parts) if index not in removed)


# --- what the caller grouped by -------------------------------------------------------

def names_grouped_by(query: bytes, fields: FieldSet = OPENAI_FIELDS) -> frozenset[str]:
    """The id fields whose *names* the caller grouped by (``group_by=api_key_name`` ->
    ``api_key_id``): the rows the proxy merges by name in the answer."""
    if not _may_name(query):
        return frozenset()
    name_to_id = _names_to_ids(fields)
    found: set[str] = set()
    for part in query.split(b"&"):
        key, _, raw_value = part.partition(b"=")
        if _decode(key) in _GROUP_BY_KEYS:
            found.update(name_to_id[v].decode() for v in _decode(raw_value).split(b",") if v in name_to_id)
    return frozenset(found)


def ids_grouped_by(query: bytes, wanted: Collection[str]) -> frozenset[str]:
    """Which of the ``wanted`` id fields the query (as it goes upstream, names already
    rewritten) groups by: where the upstream's null in that field means something."""
    if b"group" not in query and b"%" not in query:
        return frozenset()
    found: set[str] = set()
    for part in query.split(b"&"):
        key, _, raw_value = part.partition(b"=")
        if _decode(key) in _GROUP_BY_KEYS:
            found.update(v.decode("latin-1") for v in _decode(raw_value).split(b","))
    return frozenset(found.intersection(wanted))


# --- filters by name --------------------------------------------------------------------

@cache
def name_filters(fields: FieldSet) -> Mapping[str, tuple[str, str]]:
    """A provider's filters by name: api_key_names -> (api_key_ids, the id field whose
    names it filters by); the upstream's own filter where it is named otherwise
    (Anthropic's user_names -> actor_ids)."""
    return MappingProxyType({name + "s": (fields.filter_for_id.get(id_field, id_field + "s"), id_field)
                             for id_field, name in fields.name_field_for_id.items()})


@cache
def _filter_keys(fields: FieldSet) -> Mapping[bytes, str]:
    return MappingProxyType({spelling: name for name in name_filters(fields)
                             for spelling in (name.encode(), name.encode() + b"[]")})


# OpenAI's.
NAME_FILTERS: Mapping[str, tuple[str, str]] = name_filters(OPENAI_FIELDS)
_ENCODED_NAMES = re.compile(rb"(?:_|%5[fF])(?:n|%6[eE])(?:a|%61)(?:m|%6[dD])(?:e|%65)(?:s|%73)")


class UnknownName(Exception):
    """A name filter names something no id is known by; the request must not go out
    without the filter (it would return everyone's data)."""

    def __init__(self, param: str, name: str):
        super().__init__(f"{param}: no id is known by the name {name!r}")
        self.param = param
        self.name = name


def rewrite_name_filters(query: bytes, ids_by_name: Mapping[str, Mapping[str, tuple[str, ...]]],
                         fields: FieldSet = OPENAI_FIELDS) -> bytes:
    """``api_key_names`` (``project_names``, ``user_names``; any array spelling; the names
    of ``fields``) replaced by ``api_key_ids`` (...) holding every id known under those
    names, in the caller's spelling, without repeating ids the caller also gave. Raises
    UnknownName."""
    if b"_names" not in query and not (b"%" in query and _ENCODED_NAMES.search(query)):
        return query
    filters, filter_keys = name_filters(fields), _filter_keys(fields)
    parts = query.split(b"&")
    decoded = [(_decode(p.partition(b"=")[0]), p.partition(b"=")[2]) for p in parts]
    if not any(key in filter_keys for key, _ in decoded):
        return query
    # Ids already asked for, per id filter, so that none is sent twice.
    present: dict[str, set[bytes]] = {ids_param: set() for ids_param, _ in filters.values()}
    for key, raw_value in decoded:
        plain = key.removesuffix(b"[]").decode("latin-1")
        if plain in present:
            present[plain].update(_decode(raw_value).split(b","))
    out: list[bytes] = []
    for part, (key, raw_value) in zip(parts, decoded):
        param = filter_keys.get(key)
        if param is None:
            out.append(part)
            continue
        ids_param, id_field = filters[param]
        values = _decode(raw_value).split(b",")
        ids: list[bytes] = []
        for value in values:
            name = value.decode("utf-8", "replace")
            known = ids_by_name.get(id_field, {}).get(name)
            if not known:
                raise UnknownName(param, name)
            ids += [i.encode() for i in known if i.encode() not in present[ids_param]]
            present[ids_param].update(i.encode() for i in known)
        if not ids:
            continue  # every id was asked for already
        raw_key = part.partition(b"=")[0]
        new_key = (ids_param.encode() + (b"%5B%5D" if b"%5" in raw_key.upper() else b"[]")
                   if key.endswith(b"[]") else ids_param.encode())
        if len(values) > 1:  # the comma spelling stays one part
            out.append(new_key + b"=" + _encode(ids))
        else:
            out.extend(new_key + b"=" + _encode([i]) for i in ids)
    return b"&".join(out)


# --- arrays in brackets -----------------------------------------------------------------

def bracket_arrays(query: bytes, params: Collection[bytes]) -> bytes:
    """The query with every array parameter of ``params`` in the bracket spelling, one
    value per part: ``group_by=a,b`` and ``group_by=a`` become ``group_by[]=a&group_by[]=b``
    and ``group_by[]=a``. The caller's spelling of the key is kept (``group_by%5B%5D``
    stays so), and so are the bytes of each value where no escaped comma forces decoding;
    every other part, and a query needing no change, stays as it is."""
    if not params:
        return query
    out: list[bytes] = []
    changed = False
    for part in query.split(b"&"):
        raw_key, _, raw_value = part.partition(b"=")
        key = _decode(raw_key)
        bracketed = key.endswith(b"[]")
        if (key[:-2] if bracketed else key) not in params:
            out.append(part)
            continue
        if b"%2" in raw_value and b"%2c" in raw_value.lower():
            values = [_encode([value]) for value in _decode(raw_value).split(b",")]
        else:
            values = raw_value.split(b",")
        if bracketed and len(values) == 1:
            out.append(part)
            continue
        new_key = raw_key if bracketed else raw_key + b"[]"
        out.extend(new_key + b"=" + value for value in values)
        changed = True
    return b"&".join(out) if changed else query
