"""Pages from a running orgproxy over plain HTTP (urllib: the report needs none of the
daemon's machinery), every failure turned into one line for the user."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from orgproxy.report.apis import OPENAI_REPORTS, Reports
from orgproxy.report.errors import ReportError
from orgproxy.report.progress import Progress

TIMEOUT = 120  # seconds to wait for each page


@dataclass
class Fetcher:
    proxy: str
    admin_key: str
    pages: int = 0
    progress: Progress | None = None
    api: Reports = OPENAI_REPORTS  # whose headers carry the key: OpenAI's bearer, Anthropic's x-api-key
    decode: Callable[[bytes], Any] = json.loads  # FOCUS reads amounts as Decimal
    client_token: str | None = None  # sent as X-Orgproxy-Token, for a proxy that requires one

    def get(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        url = self.proxy.rstrip("/") + path + "?" + urlencode(query)
        headers = self.api.headers(self.admin_key)
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
        self.pages += 1
        if self.progress is not None:
            self.progress.update(1)
        try:
            page = self.decode(body)
        except ValueError:
            raise ReportError(f"{path}: the answer is not JSON") from None
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise ReportError(f"{path}: the answer is not a page of buckets")
        return page

    def buckets(self, path: str, query: list[tuple[str, str]]) -> Iterator[dict[str, Any]]:
        """Every bucket of every page (``page`` = the previous ``next_page``)."""
        page_query = query
        while True:
            page = self.get(path, page_query)
            yield from page["data"]
            if not page.get("has_more") or not page.get("next_page"):
                return
            page_query = [*query, ("page", page["next_page"])]


def error_message(body: bytes) -> str:
    """OpenAI's, Anthropic's (or orgproxy's) ``error.message``, else the start of whatever came."""
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace").strip() or "no message"
