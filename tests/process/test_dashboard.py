"""The dashboard as a person sees it: headless Chromium (Debian's) in front of the real daemon
over a month of costs up to today, with budgets, a client token and a key named
``<script>alert(1)</script>``. What the page should show is read from the daemon's own
costs.json (checked exact against the fake's rows in tests/web/test_dashboard.py)."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By

from tests.process.conftest import CostsDaemon
from tests.support.browser import Browser, assert_not_blank
from tests.support.fake_usage import ALIASES_TOML
from tests.support.raw_http import call

HOSTILE = "<script>alert(1)</script>"
CLIENT_TOKEN = "dashboard-browser-token-91d2"
OVER_BUDGET_RED = "rgb(192, 57, 43)"  # the page's --over colour


@pytest.fixture(scope="module")
def costs_aliases() -> str:
    return ALIASES_TOML.replace("[projects]", f"key_9f8e7d6c5b4a3210 = {json.dumps(HOSTILE)}\n\n[projects]")


@pytest.fixture(scope="module")
def costs_client_token() -> str:
    return CLIENT_TOKEN


@pytest.fixture(scope="module")
def costs_daemon_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    budgets = tmp_path_factory.mktemp("budgets") / "budgets.toml"
    budgets.write_text('[budgets]\ncheckout = 1\n"mobile-app" = 1000000\n', encoding="utf-8")
    return ["--budgets", str(budgets)]


@pytest.fixture(scope="module")
def shown(costs_daemon: CostsDaemon) -> dict[str, Any]:
    """What the dashboard shows, as its costs.json says it."""
    answer = call(costs_daemon.url, "/orgproxy/costs.json", headers={"X-Orgproxy-Token": CLIENT_TOKEN})
    assert answer.status == 200
    return json.loads(answer.body)


@pytest.fixture
def page(browser: Browser, costs_daemon: CostsDaemon) -> Browser:
    loaded = browser.load(costs_daemon.url + "/orgproxy/", user="finops", password=CLIENT_TOKEN)
    assert loaded.status == 200 and loaded.header("content-type") == "text/html; charset=utf-8"
    return browser


def cents(amount: str) -> str:
    return f"${Decimal(amount).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


def test_without_the_token_the_browser_is_asked_for_it(browser: Browser, costs_daemon: CostsDaemon) -> None:
    loaded = browser.load(costs_daemon.url + "/orgproxy/")
    assert loaded.status == 401 and loaded.header("www-authenticate") == 'Basic realm="orgproxy", charset="UTF-8"'
    assert browser.load(costs_daemon.url + "/orgproxy/", user="finops", password="not-it").status == 401
    assert not browser.elements("tr.bar-row")


def test_the_bars_show_each_name_and_its_amount_largest_first(page: Browser, shown: dict[str, Any]) -> None:
    keys = shown["providers"]["openai"]["keys"]
    rows = page.elements("section#openai table.bars tbody tr")
    seen = [(row.find_element(By.CSS_SELECTOR, "td.label bdi").text,
             row.find_element(By.CSS_SELECTOR, "td.amount").text) for row in rows]
    assert seen == [(key["label"], cents(key["amount"])) for key in keys]
    assert seen[0][0] == "checkout" and len(keys) >= 6
    total = page.text("section#openai .total")
    assert total == cents(shown["providers"]["openai"]["total"])
    widths = [float(rect.get_attribute("width")) for rect in page.elements("section#openai table.bars rect.fill")]
    assert widths == sorted(widths, reverse=True) and widths[0] > 0


def test_the_chart_is_svg_with_one_series_per_top_name_and_a_legend(page: Browser, shown: dict[str, Any]) -> None:
    daily = shown["providers"]["openai"]["daily"]
    series = page.elements("section#openai svg.chart g.series")
    assert [g.get_attribute("data-label") for g in series] == [s["label"] for s in daily["series"]]
    assert all(g.find_elements(By.CSS_SELECTOR, "rect") for g in series)
    legend = page.texts("section#openai ul.legend li")
    assert [item.rsplit(" ", 1)[0] for item in legend] == [s["label"] for s in daily["series"]]
    axis = page.texts("section#openai svg.chart text")
    assert "$0" in axis and len(axis) > 5


def test_the_name_over_its_budget_is_highlighted(page: Browser) -> None:
    (row,) = page.elements("section#openai tr.over")
    assert row.find_element(By.CSS_SELECTOR, "bdi").text == "checkout"
    assert row.find_element(By.CSS_SELECTOR, ".badge").text == "over budget"
    fill = page.driver.execute_script("return getComputedStyle(arguments[0]).fill",
                                      row.find_element(By.CSS_SELECTOR, "rect.fill"))
    assert fill == OVER_BUDGET_RED, "the stylesheet, allowed by its hash, applied"
    others = page.elements("section#openai tr.bar-row:not(.over) rect.fill")
    assert {page.driver.execute_script("return getComputedStyle(arguments[0]).fill", r) for r in others} != {
        OVER_BUDGET_RED}
    assert page.elements("section#openai tr.bar-row line.budget")


def test_the_hostile_name_is_shown_as_text_and_runs_nothing(page: Browser) -> None:
    with pytest.raises(NoAlertPresentException):
        page.driver.switch_to.alert  # noqa: B018 (an alert(1) that ran would be open)
    assert HOSTILE in page.texts("section#openai td.label bdi")
    assert HOSTILE in [g.get_attribute("data-label") for g in page.elements("svg.chart g.series")]
    assert len(page.elements("script")) == 1


def test_the_page_s_own_script_runs_and_sorts_a_column(page: Browser) -> None:
    heading = page.elements("section#openai table.bars th")[1]  # "This month"
    heading.click()  # descending, as served
    heading.click()  # ascending
    amounts = [Decimal(cell.get_attribute("data-value")) for cell in page.elements("section#openai table.bars td.amount")]
    assert amounts == sorted(amounts) and heading.get_attribute("aria-sort") == "ascending"


def test_the_screenshot_shows_the_page(page: Browser, tmp_path: Path) -> None:
    picture = assert_not_blank(page.screenshot(tmp_path / "dashboard.png", full_page=True))
    assert picture.height > page.viewport()[1], "the whole page, taller than the window"
    assert picture.colours > 50, "bars and a chart in colour, not a page of text"
