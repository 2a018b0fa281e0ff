"""orgproxy's logger, and the level below which its events are dropped.

twistd prints every event its observers receive, debug included, and offers no level
option; orgproxy's own events pass through a level filter set by ``--log-level``.
Events never carry headers or request objects: ``repr`` of Twisted's ``Headers`` shows
the bearer token.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Mapping
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogLevel,
    Logger,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
    globalLogPublisher,
)
from twisted.python.logfile import LogFile
from zope.interface import provider

from orgproxy.text import without_surrogates
from orgproxy.times import iso

LEVELS: Mapping[str, LogLevel] = {
    "debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn, "error": LogLevel.error,
}

# What --log-format takes: twistd's text lines, or one JSON object per line.
FORMATS = ("text", "json")

log = Logger(namespace="orgproxy")
_level = LogLevel.info


@provider(ILogObserver)
def _at_level_or_above(event: dict[str, Any]) -> None:
    # What FilteringLogObserver with a LogLevelFilterPredicate does, without its
    # per-namespace lookups on every event.
    if event["log_level"] >= _level:
        globalLogPublisher(event)


def set_level(name: str) -> None:
    """Drop orgproxy's events below ``name`` (one of LEVELS)."""
    global _level
    _level = LEVELS[name]
    log.observer = _at_level_or_above


def debug_enabled() -> bool:
    """Whether debug events are wanted; checked before building per-object detail."""
    return _level <= LogLevel.debug


class ClassicText:
    """twistd's own line format (``formatEventAsClassicLogText``), made cheaper.

    Twisted formats each line's timestamp afresh, through a time zone lookup and
    strftime, and each access line through ``string.Formatter``: on a small request
    that was a seventh of the daemon's time. Here the timestamp is made once per second,
    and an access line, already text (``log.info("{line}", line=...)``), is used as it is.
    Every line comes out as Twisted would write it.
    """

    def __init__(self) -> None:
        self._second: int | None = None
        self._stamp = "-"

    def stamp(self, when: float | None) -> str:
        if when is None:
            return "-"
        second = int(when // 1)
        if second != self._second:
            self._second, self._stamp = second, formatTime(when)
        return self._stamp

    def __call__(self, event: dict[str, Any]) -> str | None:
        line = event.get("line")
        if (event.get("log_format") != "{line}" or not isinstance(line, str) or "log_failure" in event
                or "log_system" in event or event.get("log_level") is None):
            return formatEventAsClassicLogText(event, formatTime=self.stamp)
        if not line:
            return None  # Twisted writes nothing for an empty event
        level: LogLevel = event["log_level"]
        text = line.replace("\n", "\n\t")
        return f"{self.stamp(event.get('log_time'))} [{event.get('log_namespace', '-')}#{level.name}] {text}\n"


def text_lines() -> ILogObserver:
    """twistd's own text lines on standard output (see ClassicText), the observer
    orgproxy gives twistd where it would log to standard output:
    ``twistd --logger orgproxy.ops.logs.text_lines orgproxy ...`` says so explicitly."""
    return FileLogObserver(sys.stdout, ClassicText())


def logs_to_standard_output(twistd_options: Mapping[str, Any]) -> bool:
    """Whether twistd, given these options of its own, would log to standard output
    with its text observer (no --logger, no --syslog; -n without --logfile, or
    --logfile -)."""
    if twistd_options.get("logger") or twistd_options.get("syslog"):
        return False
    logfile = twistd_options.get("logfile")
    return logfile == "-" or (bool(twistd_options.get("nodaemon")) and not logfile)


# Event keys of Twisted's own that are not worth shipping as fields.
_TWISTED_KEYS = ("log_", "format", "message", "isError", "system", "time", "why", "failure")


def json_lines(out: IO[str] | None = None) -> ILogObserver:
    """A log observer writing one JSON object per line to ``out`` (standard output by
    default), for log shippers: ``--log-format json``, or
    ``twistd --logger orgproxy.ops.logs.json_lines orgproxy ...``.

    Each line has ``time``, ``level``, ``namespace`` and ``message`` (the formatted
    text), the event's own fields (method, path, status, ...), and ``traceback`` for
    failures.
    """
    if out is None:
        # twistd replaces sys.stdout with a file that logs what is written to it.
        out = sys.__stdout__
    assert out is not None

    @provider(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        level = event.get("log_level")
        record: dict[str, Any] = {
            "time": iso(event.get("log_time") or 0, precise=True),
            "level": level.name if level is not None else "info",
            "namespace": event.get("log_namespace", "-"),
            "message": formatEvent(event),
        }
        for key, value in event.items():
            if not key.startswith(_TWISTED_KEYS) and isinstance(value, (str, int, float, bool, list)):
                record.setdefault(key, value)
        failure = event.get("log_failure")
        if failure is not None:
            record["traceback"] = failure.getTraceback()
        line = json.dumps(record, ensure_ascii=False, default=str)
        if not line.isascii() and without_surrogates(line) != line:
            # A lone surrogate has no UTF-8 form: as its \u escape, still the same JSON.
            line = json.dumps(record, default=str)
        out.write(line + "\n")
        out.flush()

    return observe


def observer_for(log_format: str, twistd_options: Mapping[str, Any]) -> ILogObserver | None:
    """The observer orgproxy gives twistd for ``--log-format``, or None to leave twistd's own.

    Text on standard output is ClassicText's (twistd's lines, made faster); text anywhere
    else is twistd's. JSON goes where twistd would write its lines: standard output, or the
    file twistd would write (``--logfile``; ``twistd.log`` for a daemon). ``--logger`` and
    ``--syslog`` are twistd's choices: with them it is text, as they write it.
    """
    if twistd_options.get("logger") or twistd_options.get("syslog"):
        return None
    to_standard_output = logs_to_standard_output(twistd_options)
    if log_format == "text":
        return text_lines() if to_standard_output else None
    if to_standard_output:
        return json_lines()
    return json_lines(_rotated_log_file(twistd_options.get("logfile") or "twistd.log"))


def _rotated_log_file(path: str) -> LogFile:
    """The log file as twistd opens its own: rotated at a megabyte, and on SIGUSR1 where
    nothing else handles that signal."""
    opened = LogFile.fromFullPath(path)
    if not signal.getsignal(signal.SIGUSR1):
        def rotate(number: int, frame: object) -> None:
            from twisted.internet import reactor

            reactor.callFromThread(opened.rotate)  # type: ignore[attr-defined]
        signal.signal(signal.SIGUSR1, rotate)
    return opened
