"""Walking one paginated list of an Admin API, page by page, whatever the provider.

Each provider pages in its own way (OpenAI: ``after=<last_id>``; Anthropic: ``after_id=
<last_id>``, or ``page=<next_page>`` on its token-paged lists), so the walk takes a
*cursor*: the query parameter that asks for the page after a given one, or None after
the last. What every list shares is here: the limit, a guard against a cursor that never
ends, and what a failed page means (refused key, rate limit with its Retry-After, a page
that is not a list).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orgproxy.errors import ProxyError
from orgproxy.upstream.admin_pages import AdminApiFailed, Fetch, Page, admin_page, text

# (the list's path, a page) -> the query parameter asking for the next page, or None
# after the last; raises AdminApiFailed for a page that says there is more but not where.
Cursor = Callable[[str, Page], "tuple[str, str] | None"]

PAGE_LIMIT = 100
MAX_PAGES = 10_000  # a guard against a cursor that never ends


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
            raise AdminApiFailed(f"{path}: {e.message}") from None
        if response.status in skip:
            return []
        page = admin_page(path, response)
        items.extend(item for item in page["data"] if named(item))
        following = cursor(path, page)
        if following is None:
            return items
        if following == position:
            raise AdminApiFailed(f"{path}: the next page's cursor is the page just read")
        position = following
    raise AdminApiFailed(f"{path}: more than {MAX_PAGES} pages")


def last_id(path: str, page: Page) -> str:
    """The id after which the next page starts: ``last_id``, else the last item's id."""
    after = page.get("last_id") or (page["data"][-1].get("id") if page["data"] else None)
    if not isinstance(after, str):
        raise AdminApiFailed(f"{path}: has_more without a new last_id")
    return after


def named(item: object) -> bool:
    """An item with an id and a name: the only kind a walk keeps."""
    return isinstance(item, dict) and bool(text(item.get("id"))) and bool(text(item.get("name")))
