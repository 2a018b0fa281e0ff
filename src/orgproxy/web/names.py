"""``GET /orgproxy/names``: every id's name in effect, and where it comes from.

JSON by default; ``?format=toml`` is an alias file (``names/listing.py`` makes both). A
page holds at most 1,000 entries (``?limit=``); ``next`` (and a ``Link`` header) is the
page after, by an opaque ``cursor``. ``?field=api_key_id`` keeps the entries of one id
field, ``?q=`` those whose id or name holds the text, case aside. It answers whom
``/metrics`` answers: the addresses ``--allow-from`` allows, with the client token when
one is set.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

from twisted.web import server

from orgproxy.errors import ProxyError
from orgproxy.fields import ALIAS_TABLES, ALL_ID_FIELDS
from orgproxy.names.listing import MAX_LIMIT, as_alias_file, page
from orgproxy.names.snapshot import CurrentNames
from orgproxy.paths import split_uri
from orgproxy.web.resources import OwnPage, json_body
from orgproxy.web.respond import refuse

PATH = "/orgproxy/names"
FORMATS = ("json", "toml")
MAX_TEXT = 200  # characters of ?q=


def bad_parameter(param: str, message: str) -> ProxyError:
    return ProxyError(400, "invalid_parameter", message, type="invalid_request_error", param=param, retry=False)


class NamesListing(OwnPage):
    route = "names"

    def __init__(self, current: CurrentNames):
        super().__init__()
        self.current = current

    def answer(self, request: server.Request) -> bytes | int:  # type: ignore[override]
        query = split_uri(request.uri)[1] or b""
        given = {name: values[-1] for name, values in
                 parse_qs(query.decode("utf-8", "replace"), keep_blank_values=True).items()}
        try:
            wanted = _wanted(given)
        except ProxyError as e:
            refuse(request, e)
            return server.NOT_DONE_YET
        found = page(self.current, field=wanted.field, text=wanted.text, after=wanted.after, limit=wanted.limit)
        following = None
        if found.after is not None:
            kept = {k: v for k, v in given.items() if k in ("field", "q", "format", "limit") and v}
            following = f"{PATH}?{urlencode({**kept, 'cursor': _cursor(found.after)})}"
            request.setHeader(b"link", f'<{following}>; rel="next"'.encode("ascii"))
        if wanted.format == "toml":
            request.setHeader(b"content-type", b"application/toml; charset=utf-8")
            return as_alias_file(found.entries, following).encode("utf-8")
        request.setHeader(b"content-type", b"application/json")
        return json_body({"object": "list", "data": [entry.as_json() for entry in found.entries],
                          "has_more": found.after is not None,
                          "next_cursor": _cursor(found.after) if found.after is not None else None,
                          "next": following})


@dataclass(frozen=True)
class Wanted:
    format: str
    field: str | None
    text: str | None
    limit: int
    after: tuple[str, str] | None


def _wanted(given: dict[str, str]) -> Wanted:
    """The query's parameters, checked: a 400 naming the one at fault otherwise."""
    format_ = given.get("format") or "json"
    if format_ not in FORMATS:
        raise bad_parameter("format", f"format must be json or toml, not {format_[:40]!r}.")
    field = given.get("field") or None
    if field is not None and field not in ALL_ID_FIELDS:
        raise bad_parameter("field", f"field must be one of {', '.join(ALL_ID_FIELDS)}, not {field[:40]!r}.")
    text = given.get("q") or None
    if text is not None and len(text) > MAX_TEXT:
        raise bad_parameter("q", f"q may hold at most {MAX_TEXT} characters.")
    try:
        limit = int(given.get("limit") or MAX_LIMIT)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_parameter("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    cursor = given.get("cursor") or None
    return Wanted(format_, field, text, limit, _after(cursor) if cursor is not None else None)


def _cursor(after: tuple[str, str]) -> str:
    """Where a page ends, opaque to the caller: URL-safe base64 of a JSON array."""
    return base64.urlsafe_b64encode(json.dumps(list(after)).encode("ascii")).rstrip(b"=").decode("ascii")


def _after(cursor: str) -> tuple[str, str]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        value = None
    if not (isinstance(value, list) and len(value) == 2 and value[0] in ALIAS_TABLES and isinstance(value[1], str)):
        raise bad_parameter("cursor", "cursor is not one this page gave: use the next_cursor of the page before.")
    return value[0], value[1]
