"""Walking a provider's cost pages: the same query again with ``page=<next_page>`` while
``has_more`` (OpenAI's costs and Anthropic's analytics API page alike)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from orgproxy.errors import ProxyError
from orgproxy.names.admin_walk import DiscoveryFailed, Fetch, Page, admin_page

MAX_PAGES = 10_000  # a guard against a cursor that never ends


async def walk_pages(fetch: Fetch, path: str, query: Sequence[tuple[str, str]], add_page: Callable[[Page], None],
                     decode: Callable[[bytes], Any] = orjson.loads) -> None:
    """Every page of ``path?query``, handed to ``add_page`` as it comes; DiscoveryFailed
    (the cost series' failure) for a page that is not one, or a cursor that goes nowhere."""
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        try:
            response = await fetch(path, [*query, *([("page", cursor)] if cursor else [])])
        except ProxyError as e:
            raise DiscoveryFailed(f"{path}: {e.message}") from None
        page = admin_page(path, response, decode)
        add_page(page)
        if not page.get("has_more"):
            return
        next_page = page.get("next_page")
        if not isinstance(next_page, str) or not next_page or next_page == cursor:
            raise DiscoveryFailed(f"{path}: has_more without a new next_page")
        cursor = next_page
    raise DiscoveryFailed(f"{path}: more than {MAX_PAGES} pages")
