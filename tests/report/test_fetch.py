"""Pages fetched over a real socket (a fake on a thread, no daemon), and every way a
fetch fails turned into one line."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from orgproxy.report import fetch
from orgproxy.report.errors import ReportError
from orgproxy.report.fetch import Fetcher
from orgproxy.report.progress import Progress
from tests.support.answers import TOKEN
from tests.support.daemon import free_port
from tests.support.fake_usage import COSTS, UNAUTHORIZED, FakeUsage
from tests.support.tcp_upstream import FakeUpstream, hold, reply

PAGE = {"object": "page", "data": [], "has_more": False, "next_page": None}
# 2026-10-01 to 2026-10-08, in FakeUsage's month
WEEK = [("start_time", "1790812800"), ("end_time", "1791417600"), ("bucket_width", "1d"), ("limit", "7")]


def failure(fetcher: Fetcher, path: str = COSTS) -> str:
    with pytest.raises(ReportError) as raised:
        fetcher.get(path, WEEK)
    message = str(raised.value)
    assert "\n" not in message, message
    assert TOKEN not in message
    return message


def test_a_page_is_asked_with_the_admin_key_and_the_query_url_encoded(upstream: FakeUpstream) -> None:
    upstream.on(COSTS, reply(body=PAGE))
    page = Fetcher(upstream.url + "/", TOKEN).get(COSTS, [*WEEK, ("group_by", "api_key_name"),
                                                          ("page", "page_+/8=")])
    assert page == PAGE
    received = upstream.last()
    assert received.header("Authorization") == f"Bearer {TOKEN}"
    assert received.target == (COSTS.encode() + b"?start_time=1790812800&end_time=1791417600&bucket_width=1d"
                               b"&limit=7&group_by=api_key_name&page=page_%2B%2F8%3D")


class Counter(Progress):
    def __init__(self) -> None:
        super().__init__()
        self.updates: list[tuple[int, int]] = []

    def shown(self) -> None:
        self.updates.append((self.pages, self.rows))

    def close(self) -> None:
        raise AssertionError("the fetcher does not close the progress it was given")


def test_buckets_walks_every_page_and_counts_each_page_and_its_rows_on_the_progress(upstream: FakeUpstream) -> None:
    usage = FakeUsage(token=TOKEN, page_size=3).install(upstream)
    counter = Counter()
    fetcher = Fetcher(upstream.url, TOKEN, progress=counter)
    buckets = list(fetcher.buckets(COSTS, WEEK))
    assert [b["start_time"] for b in buckets] == list(range(1790812800, 1791417600, 86400))
    assert len(usage.served) == 3  # 3 + 3 + 1 buckets
    rows = [sum(len(b["results"]) for b in buckets[:n]) for n in (3, 6, 7)]
    assert fetcher.pages == 3 and counter.updates == [(1, rows[0]), (2, rows[1]), (3, rows[2])]


def test_pages_are_read_with_exact_decimals(upstream: FakeUpstream) -> None:
    upstream.on(COSTS, reply(body=b'{"data": [{"amount": 0.1, "big": 12345678901234567890.123456789}],'
                                  b' "has_more": false}'))
    (item,) = Fetcher(upstream.url, TOKEN).buckets(COSTS, WEEK)
    assert item == {"amount": Decimal("0.1"), "big": Decimal("12345678901234567890.123456789")}


def test_an_error_answer_is_its_path_status_and_error_message(upstream: FakeUpstream) -> None:
    upstream.on(COSTS, reply(401, UNAUTHORIZED))
    message = json.loads(UNAUTHORIZED)["error"]["message"]
    assert failure(Fetcher(upstream.url, TOKEN)) == f"{COSTS}: 401: {message}"


@pytest.mark.parametrize(("body", "shown"), [
    (b"<html>Bad Gateway</html>\n", "<html>Bad Gateway</html>"),
    (b"x" * 300, "x" * 200),
    (b'{"error": "a string, not an object"}', '{"error": "a string, not an object"}'),
    (b"", "no message"),
])
def test_an_error_answer_without_openai_s_error_shows_the_start_of_its_body(
        upstream: FakeUpstream, body: bytes, shown: str) -> None:
    upstream.on(COSTS, reply(502, body, content_type="text/html"))
    assert failure(Fetcher(upstream.url, TOKEN)) == f"{COSTS}: 502: {shown}"


@pytest.mark.parametrize(("body", "said"), [
    (b"<html>a captive portal</html>", "the answer is not JSON"),
    (b'{"object": "list", "data": {}}', "the answer is not a page of buckets"),
    (b"[]", "the answer is not a page of buckets"),
])
def test_a_200_that_is_not_a_page_of_buckets_says_so(upstream: FakeUpstream, body: bytes, said: str) -> None:
    upstream.on(COSTS, reply(200, body))
    assert failure(Fetcher(upstream.url, TOKEN)) == f"{COSTS}: {said}"


def test_nothing_listening_is_cannot_reach_naming_the_proxy() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert failure(Fetcher(url, TOKEN)).startswith(f"cannot reach orgproxy at {url}: ")


def test_a_connection_closed_unanswered_is_hung_up(hangs_up: str) -> None:
    assert failure(Fetcher(hangs_up, TOKEN)).startswith(f"orgproxy at {hangs_up} hung up: ")


def test_no_answer_within_the_timeout_says_how_long_it_waited(upstream: FakeUpstream,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "TIMEOUT", 0.2)
    upstream.on(COSTS, hold(limit=10))
    assert failure(Fetcher(upstream.url, TOKEN)) == f"orgproxy at {upstream.url} did not answer within 0.2 s"
    assert upstream.cancelled.wait(5), "the report left the connection open"
