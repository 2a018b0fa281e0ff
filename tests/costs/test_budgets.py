"""--budgets: the file read exactly, every problem at its line, the previous budgets kept on a
broken reload, reloads on SIGHUP and when the file changes (the daemon in memory, polling),
and the budgets on /metrics for Prometheus's alert."""

from __future__ import annotations

import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.testing import MemoryReactorClock

from orgproxy.costs.budgets import BudgetsFileError, load_budgets, parse_budgets
from orgproxy.ops.reload import ReloadService
from orgproxy.infra.watch import POLL_INTERVAL
from orgproxy.tap import Options, makeService
from tests.support.memory import InMemoryProxy

GOOD = '# monthly budgets\n[budgets]\ncheckout = 1000\n"batch-jobs" = 250.50\n"Zürich analytics" = "x"\n'


def test_names_and_exact_dollars() -> None:
    text = b'[budgets]\ncheckout = 1000\n"batch-jobs" = 250.10\n"a.b c" = 0.1\n'
    budgets = parse_budgets(text, "b.toml")
    assert dict(budgets) == {"checkout": Decimal(1000), "batch-jobs": Decimal("250.10"), "a.b c": Decimal("0.1")}
    assert str(budgets["batch-jobs"]) == "250.10", "the decimal as written, never a double"
    assert dict(parse_budgets(b"", "b.toml")) == {} and dict(parse_budgets(b"[budgets]\n", "b.toml")) == {}


@pytest.mark.parametrize(("text", "line", "reason"), [
    (GOOD, 5, "budgets.'Zürich analytics': a budget must be a number of dollars, not a string"),
    ('[budgets]\ncheckout = 0\n', 2, "budgets.'checkout': a budget must be more than 0 dollars, not 0"),
    ('[budgets]\n\n"spent" = -5.5\n', 3, "budgets.'spent': a budget must be more than 0 dollars, not -5.5"),
    ('[budgets]\nx = inf\n', 2, "budgets.'x': a budget must be more than 0 dollars, not Infinity"),
    ('[budgets]\nx = nan\n', 2, "budgets.'x': a budget must be more than 0 dollars, not NaN"),
    ('[budgets]\nx = true\n', 2, "budgets.'x': a budget must be a number of dollars, not a boolean"),
    ('[budgets]\na.b = 1\n', 2, "budgets.'a': a budget must be a number of dollars, not a table"),
    ('[budgets]\n"" = 1\n', 2, "budgets.'': a key name must not be empty"),
    ('[budgets]\n"tab\\u0007bell" = 1\n', 2,
     "budgets.'tab\\x07bell': the name holds a control character (U+0007) at character 4"),
    ('[budgets]\nx = 1\n\n[budget]\ny = 2\n', 4, "unknown table 'budget' (the budgets go in [budgets])"),
    ('budgets = 5\n', 1, "budgets must be a table, not a int"),
])
def test_a_wrong_entry_is_an_error_at_its_line(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BudgetsFileError) as raised:
        load_budgets(str(path))
    assert (raised.value.path, raised.value.line, raised.value.reason) == (str(path), line, reason)
    assert str(raised.value) == f"{path}:{line}: {reason}"


def test_syntax_encoding_and_size_are_errors_too(tmp_path: Path) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text("[budgets]\ncheckout = 1000\ncheckout = 5\n")
    with pytest.raises(BudgetsFileError) as raised:
        load_budgets(str(path))
    assert raised.value.line == 3 and raised.value.column is not None
    path.write_bytes(b"[budgets]\nx = 1\n\xff = 2\n")
    with pytest.raises(BudgetsFileError) as raised:
        load_budgets(str(path))
    assert raised.value.line == 3 and "not UTF-8" in raised.value.reason
    path.write_bytes(b"# " + b"x" * (1024 * 1024) + b"\n")
    with pytest.raises(BudgetsFileError, match="larger than 1 MiB, the most budgets files may hold"):
        load_budgets(str(path))
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(BudgetsFileError, match="not a regular file"):
        load_budgets(str(tmp_path / "fifo"))


def test_a_broken_file_at_start_stops_the_daemon_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text("[budgets]\ncheckout = -1\n")
    options = Options(environ={})
    options.parseOptions(["--budgets", str(path), "--state-dir", str(tmp_path / "state")])
    with pytest.raises(SystemExit) as stopped:
        makeService(options, reactor=MemoryReactorClock())
    assert str(stopped.value) == (f"orgproxy: --budgets: {path}:2: budgets.'checkout': a budget must be more than"
                                  " 0 dollars, not -1")


# --- in the daemon ---------------------------------------------------------------------------------

def budget_samples(proxy: InMemoryProxy) -> dict[str, float]:
    body = proxy.get("/metrics").body.decode()
    return {s.labels["api_key_name"]: s.value for family in text_string_to_metric_families(body)
            for s in family.samples if s.name == "orgproxy_budget_monthly_usd"}


@pytest.fixture
def budgets_file(tmp_path: Path) -> Path:
    path = tmp_path / "budgets.toml"
    path.write_text('[budgets]\ncheckout = 1000\n"batch-jobs" = 250.5\n', encoding="utf-8")
    return path


@pytest.fixture
def polled(make_proxy: Callable[..., InMemoryProxy], budgets_file: Path) -> InMemoryProxy:
    proxy = make_proxy("--budgets", str(budgets_file), "--watch", "poll")
    proxy.start_service()
    return proxy


def test_the_budgets_are_on_metrics_for_prometheus(polled: InMemoryProxy) -> None:
    assert budget_samples(polled) == {"checkout": 1000.0, "batch-jobs": 250.5}


def test_a_changed_file_is_read_again_and_a_broken_one_keeps_the_budgets_once_reported(
        polled: InMemoryProxy, budgets_file: Path, logged: list[dict[str, Any]]) -> None:
    budgets_file.write_text('[budgets]\ncheckout = 1200\n', encoding="utf-8")
    polled.advance(POLL_INTERVAL)
    assert budget_samples(polled) == {"checkout": 1200.0}
    budgets_file.write_text('[budgets]\ncheckout = "lots"\n', encoding="utf-8")
    for _ in range(3):
        polled.advance(POLL_INTERVAL)
    assert budget_samples(polled) == {"checkout": 1200.0}
    errors = [e for e in logged if e.get("event") == "budgets_not_reloaded"]
    assert len(errors) == 1 and errors[0]["error"].startswith(f"{budgets_file}:2: ")
    shown = polled.get("/orgproxy/costs.json").json()
    assert shown["budgets_error"] == errors[0]["error"]
    assert any("budgets file was not read again" in w for w in shown["warnings"])


def test_sighup_reads_the_budgets_again_with_the_alias_file(make_proxy: Callable[..., InMemoryProxy],
                                                            budgets_file: Path, aliases: Path) -> None:
    proxy = make_proxy("--budgets", str(budgets_file), "--aliases", str(aliases), "--watch", "off")
    proxy.start_service()
    budgets_file.write_text('[budgets]\n"new-name" = 3\n', encoding="utf-8")
    proxy.advance(10)
    assert budget_samples(proxy) == {"checkout": 1000.0, "batch-jobs": 250.5}, "--watch off: only SIGHUP"
    (reload,) = [s for s in proxy.service if isinstance(s, ReloadService)]
    reload.on_sighup()
    proxy.flush()
    assert budget_samples(proxy) == {"new-name": 3.0}


def test_without_budgets_there_is_no_budget_series(make_proxy: Callable[..., InMemoryProxy]) -> None:
    proxy = make_proxy()
    proxy.start_service()
    assert budget_samples(proxy) == {}
