"""When to discover names, and what to do with them: put them in force and remember them.

One service per provider with an admin key (OpenAI's, Anthropic's), each walking its own
Admin API (openai_admin.py, anthropic_admin.py) on the same rules, and each running, with
``--workers``, in the first process only. Discovery runs at start (the proxy serves at
once, before it finishes), every
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
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IReactorTime

from orgproxy.fields import OPENAI_FIELDS
from orgproxy.ops import metrics
from orgproxy.ops.periodic import Periodic
from orgproxy.names import openai_admin
from orgproxy.names.admin_walk import DiscoveryFailed, Fetch
from orgproxy.names.history import History, Learned
from orgproxy.times import iso
from orgproxy.ops.logs import log
from orgproxy.names.snapshot import CurrentNames
from orgproxy.names.textcheck import Told, as_text
from orgproxy.plural import counted

# Unknown ids of these fields make OpenAI's discovery look again (users are named by the
# same walk, but an unknown user alone is common: ungrouped usage, deleted accounts).
TRIGGERING_FIELDS = OPENAI_FIELDS.triggering_fields
# A walk of one Admin API: (its GETs, the list to append what it learns to).
Walk = Callable[[Fetch, list[Learned]], Awaitable[None]]


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


def sets_off_discovery(unknown_ids: Mapping[str, str],
                       triggering_fields: frozenset[str] = TRIGGERING_FIELDS) -> bool:
    """Whether a response's unknown ids (id -> its field) are worth a walk."""
    return any(field in triggering_fields for field in unknown_ids.values())


class Cooldown:
    """Yes at most once per ``seconds``."""

    def __init__(self, clock: IReactorTime, seconds: float):
        self.clock = clock
        self.seconds = seconds
        self.last: float | None = None

    def take(self) -> bool:
        now = self.clock.seconds()
        if self.last is not None and now - self.last < self.seconds:
            return False
        self.last = now
        return True


class DiscoveryService(Periodic):
    def __init__(self, reactor: Any, fetch: Fetch, current: CurrentNames, history: History | None,
                 interval: float, cooldown: float, *, discover: Walk = openai_admin.discover,
                 provider: str = "openai", title: str = "OpenAI",
                 triggering_fields: frozenset[str] = TRIGGERING_FIELDS):
        super().__init__(reactor, interval)
        self.fetch = fetch  # the Admin API's GETs, with the admin key (upstream.admin)
        self.discover = discover
        self.provider = provider  # as metrics and the history label it
        self.title = title  # as the log names it
        self.triggering_fields = triggering_fields
        self.current = current
        self.history = history
        self.cooldown = cooldown
        self.triggers = Cooldown(reactor, cooldown)  # walks set off by unknown ids
        self.after_walk: list[Callable[[], None]] = []  # told when a walk ends, however it ended
        self.state: dict[str, Any] = {"last_success": None, "last_failure": None, "last_error": None,
                                      "learned": 0}
        self.told: set[Told] = set()  # names not text, warned about once

    def status(self) -> dict[str, Any]:
        """For /health: when discovery last worked or failed, and why (never the key)."""
        return {
            "enabled": True,
            "running": self.working is not None,
            "names": self.state["learned"],
            "last_success": iso(self.state["last_success"]),
            "last_failure": iso(self.state["last_failure"]),
            "last_error": self.state["last_error"],
        }

    def unknown_seen(self, unknown_ids: Mapping[str, str]) -> None:
        """A response carried ids nobody could name (id -> its field)."""
        if sets_off_discovery(unknown_ids, self.triggering_fields):
            self.unknown_seen_by("an unknown id was seen")

    def unknown_seen_by(self, why: str) -> None:
        """This process or a worker saw an unknown key or project id: walk, at most once
        per cooldown for the whole daemon."""
        if self.triggers.take():
            self.request(why)

    async def work(self, why: str) -> None:
        try:
            await self.walk(why)
        except CancelledError:
            raise
        for listener in self.after_walk:
            listener()

    async def walk(self, why: str) -> None:
        started = self.reactor.seconds()
        learned: list[Learned] = []
        try:
            await self.discover(self.fetch, learned)
        except DiscoveryFailed as e:
            self.failed(why, e, learned)
        except CancelledError:
            raise
        except Exception:
            # A fault of ours (a page shape nobody foresaw): logged for the operator,
            # retried like any failure; the daemon goes on serving.
            log.failure("{provider} discovery ({why}) failed unexpectedly", provider=self.title, why=why)
            self.failed(why, DiscoveryFailed("an internal error (see the log above)"), learned)
        else:
            metrics.count_discovery("ok", self.provider)
            self.state["last_success"] = self.reactor.seconds()
            self.state["last_error"] = None
            # A whole walk lists every key there is: the others are deleted (where the
            # provider's fields flag them so: OpenAI's).
            self.current.listed_keys[self.provider] = frozenset(r.id for r in learned if r.id_field == "api_key_id")
            new = self.learn(learned)
            log.info("{provider} discovery ({why}) learned {names} ({new} new) in {seconds:.1f} s",
                     provider=self.title, why=why, count=len(learned), names=counted(len(learned), "name"),
                     new=new, seconds=self.reactor.seconds() - started)
            self.succeeded("every --discovery-interval")

    def failed(self, why: str, error: DiscoveryFailed, learned: list[Learned]) -> None:
        metrics.count_discovery("failed", self.provider)
        self.state["last_failure"] = self.reactor.seconds()
        self.state["last_error"] = error.reason
        # What the walk learned before it stopped is kept; nothing known is dropped.
        new = self.learn(learned) if learned else 0
        delay, how = self.retry(error.retry_after)
        log.warn("{provider} discovery ({why}) failed: {reason}; kept {names} learned before it ({new} new);"
                 " retrying in {delay:g} s ({how})", provider=self.title, why=why, reason=error.reason,
                 count=len(learned), names=counted(len(learned), "name"), new=new, delay=delay, how=how)

    def learn(self, learned: list[Learned]) -> int:
        """Put learned names in force and remember them; how many ids were new to history."""
        learned = as_text(learned, f"{self.title} discovery", self.told)
        now = self.reactor.seconds()
        for record in learned:
            key = (record.provider, record.id_field, record.id)
            self.current.discovered[key] = record
            self.current.learned_at[key] = now
        self.current.rebuild()
        self.state["learned"] = sum(1 for provider, _, _ in self.current.discovered if provider == self.provider)
        if self.history is None:
            return 0
        try:
            return self.history.remember(learned, now)
        except (sqlite3.Error, OSError) as e:  # a full disk must not stop naming
            log.error("Could not remember learned names in {path}: {error}", path=self.history.path,
                      error=str(e))
            return 0
