"""What the dashboard shows, made from plain figures (no daemon): labels per provider, the
chart's top names and "other", budgets across providers, freshness, exact sums, and the page
written from it with whatever a name holds."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from html.parser import HTMLParser

from orgproxy.costs.figures import CostFigures, ProviderCosts, Series, dense
from orgproxy.costs.overview import overview
from orgproxy.snapshot import Names
from orgproxy.names.unknown import UnknownIds
from orgproxy.web.dashboard_chart import dollars, nice_step
from orgproxy.web.dashboard_page import render_page
from tests.support.fake_usage import day_start

NOW = day_start(date(2026, 10, 16)) + 9.5 * 3600
HOUR = 3600.0


def day(n: int, month: int = 10) -> int:
    return day_start(date(2026, month, n))


def series(provider: str, key: str | None, group: str | None, month: str, *days: tuple[int, str],
           other: bool = False) -> Series:
    days_from, daily = dense({d: Decimal(a) for d, a in days})
    return Series(provider, key, group, Decimal(month), Decimal(0), other, days_from, daily,
                  exported=Decimal(month) != 0)


def figures(**providers: ProviderCosts) -> CostFigures:
    made = CostFigures()
    for name, costs in providers.items():
        made = made.with_provider(name, costs, 10_000)
    return made


NAMES = Names.from_aliases({"api_keys": {"key_a": "checkout", "key_b": "checkout", "apikey_01x": "checkout",
                                         "apikey_01y": "support"},
                            "projects": {"proj_shop": "shop"}, "workspaces": {"wrkspc_01s": "Support"}})


def test_labels_per_provider_the_console_the_default_workspace_and_unnamed_ids() -> None:
    shown = overview(figures(
        openai=ProviderCosts((series("openai", "key_a", "proj_shop", "1.1"), series("openai", "key_b", None, "2.2"),
                              series("openai", "key_zz", "proj_zz", "0.05"), series("openai", None, None, "0.7")),
                             NOW),
        anthropic=ProviderCosts((series("anthropic", None, None, "3"), series("anthropic", "apikey_01y", "wrkspc_01s",
                                                                              "4")), NOW)),
        NAMES, {}, UnknownIds(), NOW, HOUR)
    openai, anthropic = shown.providers
    assert [(b.label, b.kind, b.amount) for b in openai.bars] == [
        ("checkout", "name", Decimal("3.3")), ("(no key)", "null", Decimal("0.7")),
        ("key_zz", "unknown", Decimal("0.05"))]
    assert openai.bars[0].key_ids == ("key_a", "key_b")
    assert [(g.label, g.kind) for g in openai.groups] == [("(no project)", "null"), ("shop", "name"),
                                                          ("proj_zz", "unknown")]
    assert [(b.label, b.kind) for b in anthropic.bars] == [("support", "name"), ("Console", "null")]
    assert [(g.label, g.kind) for g in anthropic.groups] == [("Support", "name"), ("Default", "null")]
    assert openai.total == Decimal("4.05") and shown.as_json()["providers"]["openai"]["total"] == "4.05"


def test_the_chart_has_the_8_names_that_cost_most_over_the_30_days_and_other() -> None:
    names = Names.from_aliases({"api_keys": {f"key_{n}": f"name-{n}" for n in range(10)}})
    costs = ProviderCosts(tuple(series("openai", f"key_{n}", None, "1", (day(16), str(n + 1)), (day(1), "0.1"))
                                for n in range(10)) + (series("openai", None, None, "0", (day(20, 9), "5"),
                                                              other=True),), NOW)
    (view,) = overview(figures(openai=costs), names, {}, UnknownIds(), NOW, HOUR).providers
    assert [s.label for s in view.stacks] == [f"name-{n}" for n in range(9, 1, -1)] + ["other"]
    assert view.days[0] == date(2026, 9, 17) and view.days[-1] == date(2026, 10, 16) and len(view.days) == 30
    other = view.stacks[-1]
    assert other.amounts[-1] == Decimal(2 + 1) and other.amounts[view.days.index(date(2026, 9, 20))] == 5
    assert other.total == Decimal("3.2") + 5 and view.stacks[0].amounts[-1] == 10


def test_a_budget_is_a_name_s_cost_on_both_providers_together() -> None:
    shown = overview(figures(
        openai=ProviderCosts((series("openai", "key_a", None, "60"),), NOW),
        anthropic=ProviderCosts((series("anthropic", "apikey_01x", None, "50"),), NOW)),
        NAMES, {"checkout": Decimal(100), "support": Decimal(5)}, UnknownIds(), NOW, HOUR)
    assert [(line.name, line.spent, line.over) for line in shown.budgets] == [
        ("checkout", Decimal(110), True), ("support", Decimal(0), False)]
    for view in shown.providers:
        (bar,) = view.bars
        assert (bar.budget, bar.spent, bar.over) == (Decimal(100), Decimal(110), True)


def test_fresh_stale_never_and_failing_and_what_each_says() -> None:
    def status(costs: ProviderCosts, now: float = NOW) -> tuple[str, tuple[str, ...]]:
        shown = overview(figures(openai=costs), NAMES, {}, UnknownIds(), now, HOUR)
        return shown.providers[0].status, shown.warnings
    assert status(ProviderCosts((), NOW)) == ("ok", ())
    assert status(ProviderCosts((), NOW - 3 * HOUR)) == ("ok", ())
    stale, said = status(ProviderCosts((), NOW - 3 * HOUR - 1))
    assert stale == "stale" and "stale" in said[0] and "3.0 hours" in said[0]
    assert status(ProviderCosts())[0] == "never"
    failing, said = status(ProviderCosts((), NOW - HOUR, 2, NOW - 60, "/v1/organization/costs: timed out"))
    assert failing == "failing" and "timed out" in said[0]
    assert status(ProviderCosts((), NOW, 2, NOW - 60, "old failure"))[0] == "ok", "a refresh since"


def test_amounts_are_exact_sums_and_rounded_only_to_be_shown() -> None:
    costs = ProviderCosts((series("openai", "key_a", None, "0.1", (day(16), "0.1")),
                           series("openai", "key_b", None, "0.2", (day(16), "0.2"))), NOW)
    shown = overview(figures(openai=costs), NAMES, {}, UnknownIds(), NOW, HOUR)
    json = shown.as_json()["providers"]["openai"]
    assert json["keys"][0]["amount"] == "0.3" and json["daily"]["series"][0]["amounts"][-1] == "0.3"
    assert dollars(Decimal("1234.565")) == "$1,234.57" and dollars(Decimal("-5")) == "-$5.00"
    assert dollars(Decimal("1" + "0" * 40 + ".005")) == "$" + f"{10 ** 40:,}" + ".01"
    assert [nice_step(Decimal(v)) for v in ("103", "0.9", "4999", "0")] == [
        Decimal(50), Decimal("0.2"), Decimal(1000), Decimal(1)]


class Texts(HTMLParser):
    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.text: list[str] = []
        self.attributes: list[str] = []
        self.tags: list[str] = []
        self.feed(body.decode("utf-8"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [value or "" for _, value in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_whatever_a_name_or_id_holds_the_page_is_valid_utf_8_and_shows_it_as_text() -> None:
    hostile = ['<svg onload=alert(1)>', "a & b \"quoted\" 'single'", "bell\x07\ud800", "\u202eevil", "</title><x>"]
    names = Names.from_aliases({"api_keys": {f"key_{n}": f"n{n}" for n in range(len(hostile))}})
    costs = ProviderCosts(tuple(series("openai", name, name, "1", (day(16), "1")) for name in hostile), NOW)
    body = render_page(overview(figures(openai=costs), names, {"</td>": Decimal(1)}, UnknownIds(), NOW, HOUR))
    page = Texts(body)
    text = "".join(page.text)
    for name in ('<svg onload=alert(1)>', "a & b \"quoted\" 'single'", "bell\ufffd\ufffd", "\u202eevil",
                 "</title><x>", "</td>"):
        assert name in text, name
    assert "<svg onload" not in body.decode() and "<x>" not in body.decode()
    assert set(page.tags) <= {"html", "head", "meta", "title", "style", "body", "header", "h1", "p", "a", "main",
                              "section", "h2", "span", "h3", "table", "thead", "tr", "th", "tbody", "td", "bdi",
                              "svg", "rect", "line", "g", "text", "ul", "li", "code", "footer", "script"}
