"""orgproxy's logger, and the level below which its events are dropped.

twistd prints every event its observers receive, debug included, and offers no level
option; orgproxy's own events pass through a level filter set by ``--log-level``.
Events never carry headers or request objects: ``repr`` of Twisted's ``Headers`` shows
the bearer token.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    Logger,
    globalLogPublisher,
)

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
