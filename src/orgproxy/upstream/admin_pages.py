"""An Admin API's pages as the upstream answers them, whatever the provider: one page read
and checked (a refused key, a rate limit with its Retry-After, a page that is not a list),
for discovery's walks of the lists and the cost series' walks of the reports alike."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from orgproxy.jsonvalues import refuse_constant
from orgproxy.upstream.client import UpstreamResponse

# GET path with query parameters -> the upstream's answer (or a ProxyError failure).
Fetch = Callable[[str, Sequence[tuple[str, str]]], Awaitable[UpstreamResponse]]
Page = dict[str, Any]


class AdminApiFailed(Exception):
    """A walk of an Admin API's pages stopped; ``retry_after`` is the upstream's
    Retry-After, when it sent one."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def admin_page(path: str, response: UpstreamResponse, decode: Callable[[bytes], Any] = orjson.loads) -> Page:
    """An Admin API page ({"data": [...], ...}) read by ``decode``, or AdminApiFailed
    saying why not (the cost series read their pages with it too, OpenAI's dollars as
    Decimal)."""
    if response.status == 429:
        raise AdminApiFailed(f"{path}: rate limited (429)", _retry_after(response))
    if response.status in (401, 403):
        # The upstream's message may quote part of the key: only the status is told.
        raise AdminApiFailed(f"{path}: the admin key was refused ({response.status})")
    if response.status != 200:
        raise AdminApiFailed(f"{path}: the upstream answered {response.status}",
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
            raise AdminApiFailed(f"{path}: the page is not JSON") from None
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise AdminApiFailed(f"{path}: the page has no data list")
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
