"""Walking one paginated list of an Admin API, page by page, whatever the provider.

Each provider pages in its own way (OpenAI: ``after=<last_id>``; Anthropic: ``after_id=
<last_id>``, or ``page=<next_page>`` on its token-paged lists), so the walk takes a
*cursor*: the query parameter that asks for the page after a given one, or None after
the last. What every list shares is here: the limit, a guard against a cursor that never
ends, and what a failed page means (refused key, rate limit with its Retry-After, a page
that is not a list).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from orgproxy.body.jsonvalues import refuse_constant
from orgproxy.errors import ProxyError
from orgproxy.upstream.client import UpstreamResponse

# GET path with query parameters -> the upstream's answer (or a ProxyError failure).
Fetch = Callable[[str, Sequence[tuple[str, str]]], Awaitable[UpstreamResponse]]
Page = dict[str, Any]
# (the list's path, a page) -> the query parameter asking for the next page, or None
# after the last; raises DiscoveryFailed for a page that says there is more but not where.
Cursor = Callable[[str, Page], "tuple[str, str] | None"]

PAGE_LIMIT = 100
MAX_PAGES = 10_000  # a guard against a cursor that never ends


class DiscoveryFailed(Exception):
    """The walk stopped; ``retry_after`` is the upstream's Retry-After, when it sent one."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


async def walk(fetch: Fetch, path: str, flags: list[tuple[str, str]], cursor: Cursor,
               skip: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """Every named item of a paginated list; [] when the list answers a status in ``skip``."""
    items: list[dict[str, Any]] = []
    position: tuple[str, str] | None = None
    for _ in range(MAX_PAGES):
        query = [("limit", str(PAGE_LIMIT)), *flags] + ([position] if position else [])
        try:
            response = await fetch(path, query)
        except ProxyError as e:
            raise DiscoveryFailed(f"{path}: {e.message}") from None
        if response.status in skip:
            return []
        page = admin_page(path, response)
        items.extend(item for item in page["data"] if named(item))
        following = cursor(path, page)
        if following is None:
            return items
        if following == position:
            raise DiscoveryFailed(f"{path}: the next page's cursor is the page just read")
        position = following
    raise DiscoveryFailed(f"{path}: more than {MAX_PAGES} pages")


def last_id(path: str, page: Page) -> str:
    """The id after which the next page starts: ``last_id``, else the last item's id."""
    after = page.get("last_id") or (page["data"][-1].get("id") if page["data"] else None)
    if not isinstance(after, str):
        raise DiscoveryFailed(f"{path}: has_more without a new last_id")
    return after


def admin_page(path: str, response: UpstreamResponse, decode: Callable[[bytes], Any] = orjson.loads) -> Page:
    """An Admin API page ({"data": [...], ...}) read by ``decode``, or DiscoveryFailed
    saying why not (the cost series read their pages with it too, OpenAI's dollars as
    Decimal)."""
    if response.status == 429:
        raise DiscoveryFailed(f"{path}: rate limited (429)", _retry_after(response))
    if response.status in (401, 403):
        # The upstream's message may quote part of the key: only the status is told.
        raise DiscoveryFailed(f"{path}: the admin key was refused ({response.status})")
    if response.status != 200:
        raise DiscoveryFailed(f"{path}: the upstream answered {response.status}",
                              _retry_after(response))
    try:
        page = decode(response.body)
    except (ValueError, RecursionError):  # orjson's JSONDecodeError is a ValueError too
        # orjson refuses a lone surrogate's escape (``"\ud800"``), which JSON allows and
        # a console may let someone type into a name: one such name must not hide the
        # whole list. The standard library reads it; the name is made text as it enters.
        try:
            page = json.loads(response.body, parse_constant=refuse_constant)
        except (ValueError, RecursionError):
            raise DiscoveryFailed(f"{path}: the page is not JSON") from None
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise DiscoveryFailed(f"{path}: the page has no data list")
    return page


def _retry_after(response: UpstreamResponse) -> float | None:
    value = response.header(b"retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to the usual backoff


def text(value: object) -> str | None:
    """A non-empty string, or None."""
    return value if isinstance(value, str) and value else None


def named(item: object) -> bool:
    """An item with an id and a name: the only kind a walk keeps."""
    return isinstance(item, dict) and bool(text(item.get("id"))) and bool(text(item.get("name")))
