"""Rewrite names to ids in a query string before it goes upstream: ``group_by`` names,
and filters by name.

Callers of the proxy may group by ``api_key_name``, ``project_name`` or ``user_name``.
OpenAI knows only the ids, so the upstream request must group by ``api_key_id``,
``project_id`` or ``user_id`` instead; the proxy puts the names beside the ids in the
response later.

The rewrite works on the raw bytes of the query rather than on a parsed dict, because
everything that is not a rewritten ``group_by`` value must reach OpenAI exactly as the
caller sent it: page cursors contain ``=`` and ``%3D``, parameter order and repeated keys
matter, and re-encoding (``+`` versus ``%20``, case of hex digits) could change them.

Standard library only, and no I/O: this runs on every request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import quote_from_bytes, unquote_to_bytes

from orgproxy.fields import ID_FIELD_FOR_NAME

__all__ = ["GROUP_BY_NAME_TO_ID", "NAME_FILTERS", "UnknownName", "names_grouped_by", "rewrite_group_by",
           "rewrite_name_filters"]

# Read-only, so that no caller can change what the proxy asks upstream for.
GROUP_BY_NAME_TO_ID: Mapping[str, str] = ID_FIELD_FOR_NAME

# The same mapping on bytes, because values are decoded to bytes (see _decode).
_NAME_TO_ID: Mapping[bytes, bytes] = MappingProxyType(
    {name.encode("ascii"): id_.encode("ascii") for name, id_ in GROUP_BY_NAME_TO_ID.items()}
)

# Both spellings of the key: plain clients send ``group_by``, the official SDKs send
# ``group_by[]`` (often as ``group_by%5B%5D``, hence the comparison after decoding).
_GROUP_BY_KEYS: frozenset[bytes] = frozenset({b"group_by", b"group_by[]"})

# Every name ends in "_name"; the pre-check looks for that suffix.  Its plain spelling is
# caught by a substring test, the cheapest check there is.  Any of its characters may
# also arrive percent-encoded (hex digits in either case), which only this pattern sees;
# it is consulted only when the query contains a '%' at all.
_LITERAL_SUFFIX = b"_name"
_ENCODED_SUFFIX = re.compile(rb"(?:_|%5[fF])(?:n|%6[eE])(?:a|%61)(?:m|%6[dD])(?:e|%65)")
assert all(name.endswith(_LITERAL_SUFFIX) for name in _NAME_TO_ID), "pre-check is incomplete"


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


def rewrite_group_by(query: bytes) -> bytes:
    """The raw query string (the bytes after '?', without the '?') with group_by names replaced by ids.

    Every ``group_by`` or ``group_by[]`` value (split on commas after decoding) that is a
    key of GROUP_BY_NAME_TO_ID becomes its id.  If anything was rewritten, group_by values
    are then de-duplicated across all group_by parts by first occurrence, and a part left
    with no values is dropped.  Parts whose values did not change keep their exact bytes;
    when nothing was rewritten, the very same object is returned.
    """
    if not _may_name(query):
        return query

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
        mapped = [_NAME_TO_ID.get(value, value) for value in values]
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

def names_grouped_by(query: bytes) -> frozenset[str]:
    """The id fields whose *names* the caller grouped by (``group_by=api_key_name`` ->
    ``api_key_id``): the rows the proxy merges by name in the answer."""
    if not _may_name(query):
        return frozenset()
    found: set[str] = set()
    for part in query.split(b"&"):
        key, _, raw_value = part.partition(b"=")
        if _decode(key) in _GROUP_BY_KEYS:
            found.update(_NAME_TO_ID[v].decode() for v in _decode(raw_value).split(b",") if v in _NAME_TO_ID)
    return frozenset(found)


# --- filters by name --------------------------------------------------------------------

# api_key_names -> (api_key_ids, the id field whose names it filters by)
NAME_FILTERS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "api_key_names": ("api_key_ids", "api_key_id"),
    "project_names": ("project_ids", "project_id"),
    "user_names": ("user_ids", "user_id"),
})
_FILTER_KEYS: Mapping[bytes, str] = MappingProxyType(
    {spelling: name for name in NAME_FILTERS for spelling in (name.encode(), name.encode() + b"[]")})
_ENCODED_NAMES = re.compile(rb"(?:_|%5[fF])(?:n|%6[eE])(?:a|%61)(?:m|%6[dD])(?:e|%65)(?:s|%73)")


class UnknownName(Exception):
    """A name filter names something no id is known by; the request must not go out
    without the filter (it would return everyone's data)."""

    def __init__(self, param: str, name: str):
        super().__init__(f"{param}: no id is known by the name {name!r}")
        self.param = param
        self.name = name


def rewrite_name_filters(query: bytes, ids_by_name: Mapping[str, Mapping[str, tuple[str, ...]]]) -> bytes:
    """``api_key_names`` (``project_names``, ``user_names``; any array spelling) replaced by
    ``api_key_ids`` (...) holding every id known under those names, in the caller's
    spelling, without repeating ids the caller also gave. Raises UnknownName."""
    if b"_names" not in query and not (b"%" in query and _ENCODED_NAMES.search(query)):
        return query
    parts = query.split(b"&")
    decoded = [(_decode(p.partition(b"=")[0]), p.partition(b"=")[2]) for p in parts]
    if not any(key in _FILTER_KEYS for key, _ in decoded):
        return query
    # Ids already asked for, per id filter, so that none is sent twice.
    present: dict[str, set[bytes]] = {ids_param: set() for ids_param, _ in NAME_FILTERS.values()}
    for key, raw_value in decoded:
        plain = key.removesuffix(b"[]").decode("latin-1")
        if plain in present:
            present[plain].update(_decode(raw_value).split(b","))
    out: list[bytes] = []
    for part, (key, raw_value) in zip(parts, decoded):
        param = _FILTER_KEYS.get(key)
        if param is None:
            out.append(part)
            continue
        ids_param, id_field = NAME_FILTERS[param]
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
