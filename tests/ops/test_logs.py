"""orgproxy.ops.logs: the level filter, the observers it offers twistd, and when.

The text observer orgproxy gives twistd must write every line exactly as Twisted's own
would. (That makeService offers it to twistd's application: tests/test_tap.py.)
"""

from __future__ import annotations

import io
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.logger import FileLogObserver, ILogObserver, LogLevel, formatEventAsClassicLogText
from twisted.python.failure import Failure
from twisted.scripts.twistd import ServerOptions

from orgproxy.ops import logs
from orgproxy.ops.logs import ClassicText, logs_to_standard_output
from tests.support.properties import property_settings as examples_of

README = Path(__file__).resolve().parents[2] / "README.md"


def access_event(line: str, when: float | None, level: LogLevel = LogLevel.info,
                 namespace: str = "orgproxy", **more: Any) -> dict[str, Any]:
    event = {"log_format": "{line}", "line": line, "log_level": level, "log_namespace": namespace,
             "method": "GET", "status": 200, **more}
    if when is not None:
        event["log_time"] = when
    return event


@examples_of(300)
@given(line=st.text(max_size=60), when=st.one_of(st.none(), st.floats(0, 4e9)),
       level=st.sampled_from(list(LogLevel.iterconstants())),
       namespace=st.sampled_from(["orgproxy", "orgproxy.worker1", "twisted.web"]))
def test_access_lines_come_out_as_twisted_writes_them(line: str, when: float | None, level: LogLevel,
                                                      namespace: str) -> None:
    event = access_event(line, when, level, namespace)
    assert ClassicText()(dict(event)) == formatEventAsClassicLogText(dict(event))


def failure() -> Failure:
    try:
        raise ValueError("boom")
    except ValueError:
        return Failure()


@pytest.mark.parametrize("event", [
    {"log_format": "{a} and {b!r}", "a": 1, "b": "x", "log_level": LogLevel.warn, "log_namespace": "n"},
    {"log_format": "{line}", "line": "x", "log_level": LogLevel.error, "log_failure": failure(),
     "log_namespace": "orgproxy"},
    {"log_format": "{line}", "line": "x", "log_system": "-", "log_level": LogLevel.info},
    {"log_format": "{line}", "line": 7, "log_level": LogLevel.info},
    {"log_format": "{line}", "line": "no level"},
    {"message": ("legacy",), "log_format": "{log_text}", "log_text": "legacy", "log_system": "-"},
    {"log_format": "", "log_level": LogLevel.info},
], ids=["other-format", "failure", "system", "not-text", "no-level", "legacy", "empty"])
def test_every_other_event_is_left_to_twisteds_formatting(event: dict[str, Any]) -> None:
    event.setdefault("log_time", 1_780_000_000.25)
    assert ClassicText()(dict(event)) == formatEventAsClassicLogText(dict(event))


def test_the_timestamp_follows_the_clock_across_seconds() -> None:
    text = ClassicText()
    now = time.time()
    for when in (now, now + 0.5, now + 1.0, now + 61, now - 3600):
        event = access_event("GET / -> 200", when)
        assert text(dict(event)) == formatEventAsClassicLogText(dict(event))


@pytest.mark.parametrize("argv, expected", [
    (["-n", "orgproxy"], True),
    (["-n", "--logfile", "-", "orgproxy"], True),
    (["--logfile", "-", "orgproxy"], True),
    (["-n", "--logfile", "/tmp/x.log", "orgproxy"], False),
    (["orgproxy"], False),  # a daemon: twistd.log
    (["-n", "--syslog", "orgproxy"], False),
    (["-n", "--logger", "orgproxy.ops.logs.json_lines", "orgproxy"], False),
])
def test_standard_output_is_told_from_twistds_own_options(argv: list[str], expected: bool) -> None:
    options = ServerOptions()
    options.parseOptions(argv)
    assert logs_to_standard_output(options) is expected
    # twistd hands the plugin its sub-options, whose parent these are.
    assert options.subOptions.parent is options


@pytest.mark.parametrize("name", sorted(set(re.findall(r"--logger (\S+) orgproxy", README.read_text()))))
def test_every_logger_the_readme_names_is_one_twistd_loads(name: str) -> None:
    options = ServerOptions()
    options.parseOptions(["--logger", name, "orgproxy"])
    observer = options["logger"]()
    assert ILogObserver.providedBy(observer) or isinstance(observer, FileLogObserver)


def test_the_level_filter_drops_below_and_passes_at_and_above(logged: list[dict[str, Any]]) -> None:
    try:
        logs.set_level("warn")
        logs.log.info("dropped {x}", x=1)
        logs.log.warn("kept {x}", x=2)
        logs.log.error("kept {x}", x=3)
    finally:
        logs.set_level("info")
    assert [e.get("x") for e in logged if e.get("log_namespace") == "orgproxy"] == [2, 3]


def test_text_lines_writes_to_the_stream_it_was_made_with(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    observer = logs.text_lines()
    observer(access_event("GET /x -> 200", 1_780_000_000.0))
    assert out.getvalue() == formatEventAsClassicLogText(access_event("GET /x -> 200", 1_780_000_000.0))


# --- --log-format: which observer goes where ---------------------------------------------

def parsed(argv: list[str]) -> ServerOptions:
    options = ServerOptions()
    options.parseOptions(argv)
    return options


def observed(argv: list[str]) -> ILogObserver | None:
    options = parsed(argv)
    return logs.observer_for(options.subOptions["log-format"], options)


def test_text_on_standard_output_is_orgproxys_lines_and_elsewhere_twistds(tmp_path: Path) -> None:
    assert isinstance(observed(["-n", "orgproxy"]), FileLogObserver)
    assert observed(["-n", "orgproxy", "--log-format", "text"]) is not None
    for argv in (["-n", "--logfile", str(tmp_path / "x.log"), "orgproxy"], ["orgproxy"],
                 ["-n", "--syslog", "orgproxy"], ["-n", "--logger", "orgproxy.ops.logs.json_lines", "orgproxy"]):
        assert observed(argv) is None, argv


def test_json_goes_to_standard_output_in_the_foreground(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.__stdout__", out)
    observer = observed(["-n", "orgproxy", "--log-format", "json"])
    assert observer is not None
    observer(access_event("GET /x -> 200", 1_780_000_000.0))
    record = json.loads(out.getvalue())
    assert (record["message"], record["status"], record["level"]) == ("GET /x -> 200", 200, "info")


@pytest.fixture
def sigusr1_kept() -> Iterator[None]:
    """The test process's SIGUSR1 handler as it was: a log file twistd would open rotates on it."""
    before = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, before)


@pytest.mark.parametrize("argv, written", [
    (["-n", "--logfile", "{tmp}/orgproxy.log", "orgproxy", "--log-format", "json"], "orgproxy.log"),
    (["orgproxy", "--log-format", "json"], "twistd.log"),  # a daemon writes twistd.log where it starts
])
def test_json_goes_into_the_file_twistd_would_write(argv: list[str], written: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, sigusr1_kept: None) -> None:
    monkeypatch.chdir(tmp_path)
    observer = observed([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert observer is not None
    observer(access_event("GET /x -> 200", 1_780_000_000.0))
    (line,) = (tmp_path / written).read_text().splitlines()
    record = json.loads(line)
    assert (record["message"], record["method"], record["status"]) == ("GET /x -> 200", "GET", 200)
    assert signal.getsignal(signal.SIGUSR1) not in (None, signal.SIG_DFL)  # rotated on SIGUSR1, as twistd's


def test_the_format_comes_from_the_environment_and_the_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORGPROXY_LOG_FORMAT", "json")
    assert parsed(["-n", "orgproxy"]).subOptions["log-format"] == "json"
    assert parsed(["-n", "orgproxy", "--log-format", "text"]).subOptions["log-format"] == "text"


@pytest.mark.parametrize("argv", [
    ["-n", "orgproxy", "--log-format", "yaml"],
    ["-n", "--syslog", "orgproxy", "--log-format", "json"],
    ["-n", "--logger", "orgproxy.ops.logs.text_lines", "orgproxy", "--log-format", "json"],
])
def test_a_format_it_cannot_write_there_is_refused_with_one_line(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        parsed(argv)
    assert str(refused.value).startswith("orgproxy: --log-format")
