"""The dashboard served by the daemon in memory (``GET /orgproxy/``, ``/orgproxy/costs.json``):
over FakeUsage's costs from September 10th on a clock at 2026-10-16 09:30 UTC, with budgets,
a hostile key name and the client token. What it should show is summed here from the fake's
rows; what a page holds is read with the standard library's HTML parser (what a browser
shows of it: tests/process/test_dashboard.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.support.answers import TOKEN
from tests.support.fake_openai import FakeOpenAI, reply
from tests.support.fake_usage import ALIASES_TOML, COSTS, FakeUsage, day_start
from tests.support.memory import InMemoryProxy
from tests.support.usage_in_memory import serve_in_memory

NOW = day_start(date(2026, 10, 16)) + 9.5 * 3600
HOSTILE = "<script>alert(1)</script>"
QUOTED = '"><img src=x onerror=alert(2)>'
# The unnamed keys of FakeUsage named by hostile names; budgets under and over.
ALIASES = ALIASES_TOML.replace("[projects]", f'key_9f8e7d6c5b4a3210 = {json.dumps(HOSTILE)}\n'
                                             f'key_0badc0ffee000042 = {json.dumps(QUOTED)}\n\n[projects]')
BUDGETS = '[budgets]\ncheckout = 100\n"mobile-app" = 5000.50\n"never-spent" = 10\n'
CLIENT_TOKEN = "dashboard-token-7c1e"


class Page(HTMLParser):
    """What a page is made of: its elements (tag, attributes, in order), its text, and the
    content of its <script> and <style> elements."""

    def __init__(self, body: bytes) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.raw: dict[str, list[str]] = defaultdict(list)
        self._in: str | None = None
        self.feed(body.decode("utf-8"))
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self.raw[self._in].append(data)
        else:
            self.text.append(data)

    def all(self, tag: str, css: str | None = None) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.elements
                if name == tag and (css is None or css in (attrs.get("class") or "").split())]


@pytest.fixture
def usage(fake: FakeOpenAI) -> FakeUsage:
    return serve_in_memory(FakeUsage(token=TOKEN, since=date(2026, 9, 10)), fake)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    aliases, budgets = tmp_path / "aliases.toml", tmp_path / "budgets.toml"
    aliases.write_text(ALIASES, encoding="utf-8")
    budgets.write_text(BUDGETS, encoding="utf-8")
    return aliases, budgets


Start = Callable[..., InMemoryProxy]


@pytest.fixture
def start(make_proxy: Callable[..., InMemoryProxy], files: tuple[Path, Path], usage: FakeUsage) -> Start:
    def started(*args: str, environ: dict[str, str] | None = None, at: float = NOW) -> InMemoryProxy:
        aliases, budgets = files
        proxy = make_proxy("--aliases", str(aliases), "--budgets", str(budgets), "--discovery-interval", "86400",
                           *args, environ={"OPENAI_ADMIN_KEY": TOKEN} if environ is None else environ)
        proxy.clock.advance(at)
        proxy.start_service()
        proxy.flush()
        return proxy
    return started


def month_by_key(usage: FakeUsage) -> dict[str, Decimal]:
    """This month's cost per key as the fake serves it: each day's line items added up as
    doubles and written, read back as written, then added up exactly."""
    days: dict[tuple[str, date], float] = defaultdict(float)
    for row in usage.costs_rows:
        if date(2026, 10, 1) <= row.day <= date(2026, 10, 16):
            days[(row.api_key_id, row.day)] += row.value
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for (key, _), value in days.items():
        sums[key] += Decimal(repr(value))
    return sums


def cents(amount: Decimal) -> str:
    return f"${amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


# --- costs.json: the data the page shows, exact -------------------------------------------------

def test_costs_json_has_this_month_per_key_name_largest_first_exact(start: Start, usage: FakeUsage) -> None:
    answer = start().get("/orgproxy/costs.json")
    assert (answer.status, answer.header("content-type")) == (200, "application/json")
    openai = answer.json()["providers"]["openai"]
    keys = openai["keys"]
    by_key = month_by_key(usage)
    checkout = by_key["key_3f9a1c0d7e2b4a01"] + by_key["key_8b2e6f4a1d9c3e02"]
    assert keys[0]["label"] == "checkout" and Decimal(keys[0]["amount"]) == checkout
    assert [Decimal(k["amount"]) for k in keys] == sorted((Decimal(k["amount"]) for k in keys), reverse=True)
    hostile = next(k for k in keys if k["label"] == HOSTILE)
    assert Decimal(hostile["amount"]) == by_key["key_9f8e7d6c5b4a3210"] and hostile["kind"] == "name"
    assert Decimal(openai["total"]) == sum(by_key.values())
    assert openai["month"] == "2026-10-01" and openai["status"] == "ok"
    assert openai["refreshed_at"] == "2026-10-16T09:30:00+00:00"


def test_costs_json_has_each_of_the_30_days_for_the_top_names_and_other(start: Start, usage: FakeUsage) -> None:
    daily = start().get("/orgproxy/costs.json").json()["providers"]["openai"]["daily"]
    assert daily["days"][0] == "2026-09-17" and daily["days"][-1] == "2026-10-16" and len(daily["days"]) == 30
    series = {s["label"]: [Decimal(a) for a in s["amounts"]] for s in daily["series"]}
    # FakeUsage has 8 keys under 7 labels (checkout's two together): no "other".
    assert len(series) == 7 and "other" not in series
    per_day: dict[date, float] = defaultdict(float)
    for row in usage.costs_rows:
        if row.api_key_id == "key_c4d1a7e93b0f5803":
            per_day[row.day] += row.value
    want = [Decimal(repr(per_day[date.fromisoformat(d)])) if date.fromisoformat(d) in per_day else Decimal(0)
            for d in daily["days"]]
    assert series["mobile-app"] == want


def test_budgets_are_per_name_with_what_it_spent_and_whether_it_is_over(start: Start) -> None:
    shown = start().get("/orgproxy/costs.json").json()
    budgets = {b["api_key_name"]: b for b in shown["budgets"]}
    assert budgets["checkout"]["over"] and budgets["checkout"]["budget"] == "100"
    assert not budgets["mobile-app"]["over"] and budgets["mobile-app"]["budget"] == "5000.50"
    assert budgets["never-spent"] == {"api_key_name": "never-spent", "budget": "10", "spent": "0", "over": False}
    keys = {k["label"]: k for k in shown["providers"]["openai"]["keys"]}
    assert keys["checkout"]["over_budget"] and not keys["mobile-app"]["over_budget"]
    assert keys["batch-jobs"]["budget"] is None


# --- the page ------------------------------------------------------------------------------------

def test_the_page_shows_each_name_and_amount_as_a_bar_largest_first(start: Start, usage: FakeUsage) -> None:
    answer = start().get("/orgproxy/")
    assert (answer.status, answer.header("content-type")) == (200, "text/html; charset=utf-8")
    page = Page(answer.body)
    rows = page.all("tr", "bar-row")
    labels = [row["data-label"] for row in rows]
    by_key = month_by_key(usage)
    assert labels[:2] == ["checkout", "mobile-app"]
    assert HOSTILE in labels and QUOTED in labels
    amounts = [Decimal(cell["data-value"] or "") for cell in page.all("td", "amount")][:len(rows)]
    assert amounts == sorted(amounts, reverse=True)
    text = "".join(page.text)
    assert cents(by_key["key_c4d1a7e93b0f5803"]) in text
    assert len(page.all("svg", "bar")) >= len(rows)


def test_over_budget_names_are_highlighted_and_budgets_marked(start: Start) -> None:
    page = Page(start().get("/orgproxy/").body)
    over = [row["data-label"] for row in page.all("tr", "over")]
    assert over == ["checkout", "checkout"]  # its bar, and its line in the budgets' table
    assert "over budget" in "".join(page.text)
    assert len(page.all("line", "budget")) == 2  # checkout's and mobile-app's bars


def test_the_chart_has_one_series_per_top_name_a_legend_and_axes(start: Start) -> None:
    page = Page(start().get("/orgproxy/").body)
    (chart,) = page.all("svg", "chart")
    series = [g["data-label"] for g in page.all("g", "series")]
    assert series[:2] == ["checkout", "mobile-app"] and len(series) == 7 and HOSTILE in series
    text = "".join(page.text)
    assert "Sep 17" in text and "Oct 16" in text and "$0" in text


def test_every_name_from_outside_is_text_and_the_only_script_is_the_page_s(start: Start) -> None:
    body = start().get("/orgproxy/").body
    page = Page(body)
    assert len(page.all("script")) == 1 and not page.all("img")
    assert "alert" not in "".join(page.raw["script"])
    text = "".join(page.text)
    assert HOSTILE in text and QUOTED in text
    # In attributes and SVG alike, never as markup.
    assert HOSTILE.encode() not in body and b"<img" not in body
    assert all(not name.startswith("on") for _, attrs in page.elements for name in attrs)


def test_the_policy_allows_exactly_the_page_s_inline_style_and_script(start: Start) -> None:
    answer = start().get("/orgproxy/")
    policy = dict(part.strip().split(" ", 1) for part in answer.header("content-security-policy").split(";"))
    page = Page(answer.body)

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == digest("".join(page.raw["script"]))
    assert policy["style-src"] == digest("".join(page.raw["style"]))
    assert not any("style" in attrs for _, attrs in page.elements), "no style attribute: the policy forbids them"
    assert not re.search(r"https?://", answer.body.decode()), "nothing remote"
    assert (answer.header("x-content-type-options"), answer.header("referrer-policy"),
            answer.header("cache-control")) == ("nosniff", "no-referrer", "no-store")


def test_a_failing_refresh_is_a_plain_warning_with_the_last_figures_kept(start: Start, fake: FakeOpenAI) -> None:
    proxy = start()
    fake.on(COSTS, reply(500, {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}}))
    proxy.advance(3600)
    page = Page(proxy.get("/orgproxy/").body)
    assert len(page.all("li", "warning")) == 1
    text = "".join(page.text)
    assert "OpenAI: the last refresh of the costs failed" in text and "the upstream answered 500" in text
    assert page.all("tr", "bar-row"), "the last figures stay"
    assert proxy.get("/orgproxy/costs.json").json()["providers"]["openai"]["status"] == "failing"


def test_without_an_admin_key_the_page_says_how_to_enable_costs_instead_of_empty_charts(start: Start) -> None:
    for proxy, state in ((start(environ={}), "no_admin_key"), (start("--cost-interval", "0"), "off")):
        page = Page(proxy.get("/orgproxy/").body)
        assert page.all("section", "enable") and not page.all("svg", "chart") and not page.all("tr", "bar-row")
        text = "".join(page.text)
        assert ("OPENAI_ADMIN_KEY" in text) if state == "no_admin_key" else ("--cost-interval 0" in text)
        assert proxy.get("/orgproxy/costs.json").json()["cost_series"] == state


def test_unknown_ids_are_counted_the_most_recent_listed_and_linked(start: Start, fake: FakeOpenAI) -> None:
    proxy = start()
    fake.on("/v1/organization/usage/completions", reply(body={"data": [
        {"api_key_id": "key_nobodyknows00001"}, {"project_id": "proj_nobody"}]}))
    assert proxy.get("/v1/organization/usage/completions?start_time=1").status == 200
    page = Page(proxy.get("/orgproxy/").body)
    assert [a["href"] for a in page.all("a")][-1] == "unknown?format=toml"
    text = "".join(page.text)
    assert "key_nobodyknows00001" in text and "proj_nobody" in text
    unknown = proxy.get("/orgproxy/costs.json").json()["unknown_ids"]
    assert unknown["count"] == 2 and {u["id"] for u in unknown["recent"]} == {"key_nobodyknows00001", "proj_nobody"}


def test_the_dashboard_never_calls_the_upstream(start: Start, fake: FakeOpenAI) -> None:
    proxy = start()
    before = len(fake.received)
    for _ in range(3):
        assert proxy.get("/orgproxy/").status == 200 and proxy.get("/orgproxy/costs.json").status == 200
    assert len(fake.received) == before


def test_orgproxy_without_its_slash_is_sent_to_the_dashboard(start: Start) -> None:
    answer = start().get("/orgproxy")
    assert (answer.status, answer.header("location")) == (301, "/orgproxy/")


# --- who may see it ------------------------------------------------------------------------------

def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def guarded(start: Start, tmp_path: Path) -> InMemoryProxy:
    token = tmp_path / "client-token"
    token.write_text(CLIENT_TOKEN + "\n")
    return start("--client-token-file", str(token))


@pytest.mark.parametrize("path", ["/orgproxy/", "/orgproxy/costs.json"])
def test_with_a_client_token_the_dashboard_asks_for_basic_credentials(guarded: InMemoryProxy, path: str) -> None:
    refused = guarded.get(path)
    assert refused.status == 401
    assert refused.header("www-authenticate") == 'Basic realm="orgproxy", charset="UTF-8"'
    assert refused.header("cache-control") == "no-store" and refused.header("x-content-type-options") == "nosniff"
    assert guarded.get(path, basic("anyone", "wrong")).status == 401
    assert guarded.get(path, basic("", CLIENT_TOKEN[:-1])).status == 401
    assert guarded.get(path, {"Authorization": "Basic !!!not-base64"}).status == 401
    for headers in (basic("anyone", CLIENT_TOKEN), basic("", CLIENT_TOKEN), {"X-Orgproxy-Token": CLIENT_TOKEN}):
        assert guarded.get(path, headers).status == 200, headers


def test_the_address_without_its_slash_asks_too_and_then_redirects(guarded: InMemoryProxy) -> None:
    assert guarded.get("/orgproxy").header("www-authenticate") == 'Basic realm="orgproxy", charset="UTF-8"'
    answer = guarded.get("/orgproxy", basic("anyone", CLIENT_TOKEN))
    assert (answer.status, answer.header("location")) == (301, "/orgproxy/")


@pytest.mark.parametrize("path", ["/metrics", "/orgproxy/names", "/orgproxy/unknown"])
def test_nothing_else_takes_basic_credentials(guarded: InMemoryProxy, path: str) -> None:
    refused = guarded.get(path, basic("anyone", CLIENT_TOKEN))
    assert refused.status == 401 and refused.header("www-authenticate") is None
    assert guarded.get(path, {"X-Orgproxy-Token": CLIENT_TOKEN}).status == 200


def test_a_forwarded_request_s_basic_credentials_do_not_pass_the_guard(guarded: InMemoryProxy,
                                                                       fake: FakeOpenAI) -> None:
    before = len(fake.received)
    assert guarded.get(COSTS + "?start_time=1", basic("anyone", CLIENT_TOKEN)).status == 401
    assert len(fake.received) == before



def test_a_worker_shows_what_the_fetching_process_wrote(start: Start, fake: FakeOpenAI) -> None:
    def costs_calls() -> int:
        return sum(r.path == COSTS.encode() for r in fake.received)
    parent = start()
    calls = costs_calls()
    worker = start("--worker-number", "1")  # as --workers' worker: it fetches no costs
    shown = worker.get("/orgproxy/costs.json").json()
    assert shown["providers"] == parent.get("/orgproxy/costs.json").json()["providers"]
    assert shown["budgets"] and costs_calls() == calls
