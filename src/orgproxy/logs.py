"""orgproxy's logger, and the level below which its events are dropped.

twistd prints every event its observers receive, debug included, and offers no level
option; orgproxy's own events pass through a level filter set by ``--log-level``.
Events never carry headers or request objects: ``repr`` of Twisted's ``Headers`` shows
the bearer token.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    Logger,
    formatEvent,
    globalLogPublisher,
)
from zope.interface import provider

from orgproxy.times import iso

LEVELS: Mapping[str, LogLevel] = {
    "debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn, "error": LogLevel.error,
}

log = Logger(namespace="orgproxy")
_level = LogLevel.info


def set_level(name: str) -> None:
    """Drop orgproxy's events below ``name`` (one of LEVELS)."""
    global _level
    _level = LEVELS[name]
    log.observer = FilteringLogObserver(
        globalLogPublisher, [LogLevelFilterPredicate(defaultLogLevel=_level)])


def debug_enabled() -> bool:
    """Whether debug events are wanted; checked before building per-object detail."""
    return _level <= LogLevel.debug


# Event keys of Twisted's own that are not worth shipping as fields.
_TWISTED_KEYS = ("log_", "format", "message", "isError", "system", "time", "why", "failure")


def json_lines() -> ILogObserver:
    """A log observer writing one JSON object per line to standard output, for log
    shippers: ``twistd --logger orgproxy.logs.json_lines orgproxy ...``.

    Each line has ``time``, ``level``, ``namespace`` and ``message`` (the formatted
    text), the event's own fields (method, path, status, ...), and ``traceback`` for
    failures.
    """
    # twistd replaces sys.stdout with a file that logs what is written to it.
    out = sys.__stdout__

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
        out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        out.flush()

    return observe
