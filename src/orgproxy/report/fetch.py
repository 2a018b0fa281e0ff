"""Pages from a running orgproxy over plain HTTP (urllib: the report needs none of the
daemon's machinery), read with exact decimals, every failure turned into one line for the
user. Pages are handed on one at a time: nothing holds more than the page in hand."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from orgproxy.jsonvalues import refuse_constant
from orgproxy.report.apis import OPENAI_REPORTS, Reports
from orgproxy.report.errors import ReportError
from orgproxy.report.progress import Progress

TIMEOUT = 120  # seconds to wait for each page


def exact_json(body: bytes) -> Any:
    """JSON with its numbers as Decimal (``0.1`` stays 0.1, not 0.1000000000000000055...)."""
    return json.loads(body, parse_float=Decimal, parse_constant=refuse_constant)


@dataclass
class Fetcher:
    proxy: str
    admin_key: str
    pages: int = 0
    progress: Progress = field(default_factory=Progress)
    api: Reports = OPENAI_REPORTS  # whose headers carry the key, and how a page counts its rows
    client_token: str | None = None  # sent as X-Orgproxy-Token, for a proxy that requires one

    def get_json(self, path: str, query: list[tuple[str, str]], headers: dict[str, str] | None = None) -> Any:
        """The answer to ``GET path?query``, read with exact decimals."""
        url = self.proxy.rstrip("/") + path + ("?" + urlencode(query) if query else "")
        headers = {**self.api.headers(self.admin_key), **(headers or {})}
        if self.client_token is not None:
            headers["X-Orgproxy-Token"] = self.client_token
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                body = response.read()
        except urllib.error.HTTPError as e:
            raise ReportError(f"{path}: {e.code}: {error_message(e.read())}") from None
        except urllib.error.URLError as e:
            raise ReportError(f"cannot reach orgproxy at {self.proxy}: {e.reason}") from None
        except TimeoutError:
            raise ReportError(f"orgproxy at {self.proxy} did not answer within {TIMEOUT} s") from None
        except (http.client.HTTPException, OSError) as e:
            # The connection dropped without (a whole) answer.
            raise ReportError(f"orgproxy at {self.proxy} hung up: {e or type(e).__name__}") from None
        try:
            return exact_json(body)
        except (ValueError, RecursionError):
            raise ReportError(f"{path}: the answer is not JSON") from None

    def get(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        """One page: an object whose ``data`` is a list."""
        page = self.get_json(path, query)
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise ReportError(f"{path}: the answer is not a page of buckets")
        self.pages += 1
        self.progress.fetched(self.api.rows_in(page))
        return page

    def buckets(self, path: str, query: list[tuple[str, str]]) -> Iterator[Any]:
        """Every item of every page's ``data`` (``page`` = the previous ``next_page``)."""
        page_query = query
        while True:
            page = self.get(path, page_query)
            yield from page["data"]
            if not page.get("has_more") or not page.get("next_page"):
                return
            page_query = [*query, ("page", str(page["next_page"]))]


def error_message(body: bytes) -> str:
    """OpenAI's, Anthropic's (or orgproxy's) ``error.message``, else the start of whatever came."""
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError, RecursionError):
        return body[:200].decode("utf-8", "replace").strip() or "no message"
