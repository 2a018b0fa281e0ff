"""When to discover names, and what to do with them: put them in force and remember them.

Discovery runs at start (the proxy serves at once, before it finishes), every
``interval`` seconds, on SIGHUP, and when a response carries an unknown key or project
id (at most once per ``cooldown``), so that a key created this morning is named on the
next request. One walk at a time: a request for another while one runs is folded into
one more walk after it. Failures are retried with backoff, or after the upstream's
Retry-After; names already known are never dropped.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall

from orgproxy.ops import metrics
from orgproxy.names.openai_admin import DiscoveryFailed, Fetch, discover
from orgproxy.names.history import History, Learned
from orgproxy.times import iso
from orgproxy.ops.logs import log
from orgproxy.names.snapshot import CurrentNames
from orgproxy.plural import counted

# Unknown ids of these fields make discovery look again (users are named by the same walk,
# but an unknown user alone is common: ungrouped usage, deleted accounts).
TRIGGERING_FIELDS = frozenset({"api_key_id", "project_id"})
FIRST_BACKOFF = 1.0
MAX_RETRY_AFTER = 3600.0


class KeyFileError(Exception):
    pass


def read_admin_key(path: str) -> str:
    """The admin key in ``path``; warns when others may read the file."""
    try:
        key = open(path, encoding="utf-8").read().strip()
        mode = os.stat(path).st_mode
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"{path}: cannot read the admin key: {getattr(e, 'strerror', None) or e}") from None
    if not key:
        raise KeyFileError(f"{path}: the admin key file is empty")
    if not key.isascii() or not key.isprintable() or " " in key:
        raise KeyFileError(f"{path}: the admin key file holds characters a key cannot have")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warn("The admin key file {path} can be read by others (mode {mode:o}); chmod 600 it",
                 path=path, mode=stat.S_IMODE(mode))
    return key


class DiscoveryService(Service):
    def __init__(self, reactor: Any, fetch: Fetch, current: CurrentNames, history: History | None,
                 interval: float, cooldown: float):
        self.reactor = reactor
        self.fetch = fetch  # the Admin API's GETs, with the admin key (upstream.admin)
        self.current = current
        self.history = history
        self.interval = interval
        self.cooldown = cooldown
        self.walking: Deferred[None] | None = None
        self.again: str | None = None  # why another walk was asked for during this one
        self.next_walk: IDelayedCall | None = None
        self.failures = 0
        self.last_triggered: float | None = None
        self.state: dict[str, Any] = {"last_success": None, "last_failure": None, "last_error": None,
                                      "learned": 0}

    def status(self) -> dict[str, Any]:
        """For /health: when discovery last worked or failed, and why (never the key)."""
        return {
            "enabled": True,
            "running": self.walking is not None,
            "names": self.state["learned"],
            "last_success": iso(self.state["last_success"]),
            "last_failure": iso(self.state["last_failure"]),
            "last_error": self.state["last_error"],
        }

    def startService(self) -> None:
        super().startService()
        self.schedule(0, "start")

    def stopService(self) -> None:
        super().stopService()
        if self.next_walk is not None and self.next_walk.active():
            self.next_walk.cancel()
        if self.walking is not None:
            self.walking.cancel()

    def schedule(self, delay: float, why: str) -> None:
        if self.next_walk is not None and self.next_walk.active():
            self.next_walk.cancel()
        self.next_walk = self.reactor.callLater(delay, self.request, why)

    def request(self, why: str) -> None:
        """Walk now, or right after the walk under way."""
        if not self.running:
            return
        if self.walking is not None:
            self.again = self.again or why
            return
        walking = Deferred.fromCoroutine(self.walk(why))
        walking.addErrback(lambda f: f.trap(CancelledError))
        # A walk whose every page came at once (or whose first call failed at once) has
        # already run its end, which cleared ``walking``: marking it running now would
        # leave it running forever, and every later request only queued behind it.
        if not walking.called:
            self.walking = walking

    def unknown_seen(self, unknown_ids: Mapping[str, str]) -> None:
        """A response carried ids nobody could name (id -> its field)."""
        if not any(field in TRIGGERING_FIELDS for field in unknown_ids.values()):
            return
        now = self.reactor.seconds()
        if self.last_triggered is not None and now - self.last_triggered < self.cooldown:
            return
        self.last_triggered = now
        self.request("an unknown id was seen")

    async def walk(self, why: str) -> None:
        started = self.reactor.seconds()
        learned: list[Learned] = []
        try:
            await discover(self.fetch, learned)
        except DiscoveryFailed as e:
            self.failed(why, e, learned)
        except CancelledError:
            raise
        except Exception:
            # A fault of ours (a page shape nobody foresaw): logged for the operator,
            # retried like any failure; the daemon goes on serving.
            log.failure("Discovery ({why}) failed unexpectedly", why=why)
            self.failed(why, DiscoveryFailed("an internal error (see the log above)"), learned)
        else:
            metrics.DISCOVERY_RUNS.labels("ok").inc()
            self.failures = 0
            self.state["last_success"] = self.reactor.seconds()
            self.state["last_error"] = None
            new = self.learn(learned)
            log.info("Discovery ({why}) learned {names} ({new} new) in {seconds:.1f} s",
                     why=why, count=len(learned), names=counted(len(learned), "name"), new=new,
                     seconds=self.reactor.seconds() - started)
            self.schedule(self.interval, "every --discovery-interval")
        finally:
            self.walking = None
        if self.again is not None:
            again, self.again = self.again, None
            self.request(again)

    def failed(self, why: str, error: DiscoveryFailed, learned: list[Learned]) -> None:
        metrics.DISCOVERY_RUNS.labels("failed").inc()
        self.failures += 1
        if error.retry_after is not None:
            delay = min(error.retry_after, MAX_RETRY_AFTER)
            how = "as Retry-After asks"
        else:
            delay = min(FIRST_BACKOFF * 2 ** (self.failures - 1), self.interval)
            how = "backing off"
        self.state["last_failure"] = self.reactor.seconds()
        self.state["last_error"] = error.reason
        # What the walk learned before it stopped is kept; nothing known is dropped.
        new = self.learn(learned) if learned else 0
        log.warn("Discovery ({why}) failed: {reason}; kept {names} learned before it ({new} new);"
                 " retrying in {delay:g} s ({how})", why=why, reason=error.reason, count=len(learned),
                 names=counted(len(learned), "name"), new=new, delay=delay, how=how)
        self.schedule(delay, "retry")

    def learn(self, learned: list[Learned]) -> int:
        """Put learned names in force and remember them; how many ids were new to history."""
        for record in learned:
            self.current.discovered[(record.id_field, record.id)] = record
        self.current.rebuild()
        self.state["learned"] = len(self.current.discovered)
        if self.history is None:
            return 0
        try:
            return self.history.remember(learned, self.reactor.seconds())
        except (sqlite3.Error, OSError) as e:  # a full disk must not stop naming
            log.error("Could not remember learned names in {path}: {error}", path=self.history.path,
                      error=str(e))
            return 0
