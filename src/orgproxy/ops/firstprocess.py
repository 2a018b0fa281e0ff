"""A worker's ties to the first process (the one twistd started), with ``--workers``.

Two pipes, which the first process makes as it starts a worker (``workers.py``):

- **The worker's standard input.** Only the first process holds its other end, and never
  writes to it. When the first process ends, however it ends (``kill -9`` included), the
  kernel closes that end and the worker reads end-of-file: it then stops as on SIGTERM,
  at once no longer accepting (so that a new daemon can bind the port), lets requests in
  flight finish within --shutdown-timeout, and exits. No orphan goes on serving. Chosen
  over ``prctl(PR_SET_PDEATHSIG)``: it is not Linux-only and needs no ctypes; it has no
  race (end-of-file stays readable, so a worker whose first process died before it began
  watching still sees it, where a death signal asked for after the death never comes);
  and it follows the process, where the death signal follows the thread that forked.
- **``REQUESTS_FD``**, which the worker writes and the first process reads: one line per
  request. ``discover <provider>``: a response carried an unknown id of a kind that sets
  off that provider's discovery (OpenAI's key or project, Anthropic's key or workspace),
  and that discovery, which only the first process runs, should look for it. A worker asks
  at most once per --discovery-cooldown for each provider; the first process applies the
  cooldown to the whole daemon.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from orgproxy.names.discovery import TRIGGERING_FIELDS, Cooldown, sets_off_discovery
from orgproxy.infra.logs import log

REQUESTS_FD = 4  # where a worker writes its requests to the first process
DISCOVER = b"discover"
# The longest request line the first process reads; longer ones are garbage.
MAX_LINE = 128


@implementer(IReadDescriptor)
class FirstProcessLink(Service):
    """The worker's side: ``on_gone`` once the first process has ended; discovery asked for."""

    def __init__(self, reactor: Any, on_gone: Callable[[], None], cooldown: float,
                 stdin: int = 0, requests: int = REQUESTS_FD):
        self.reactor = reactor
        self.on_gone = on_gone
        self.stdin = stdin
        self.requests = requests
        self.cooldown = cooldown
        self.asking: dict[str, DiscoveryAsker] = {}  # provider -> its discovery's stand-in
        self.gone = False

    def startService(self) -> None:
        super().startService()
        self.reactor.addReader(self)

    def stopService(self) -> None:
        self.reactor.removeReader(self)
        super().stopService()

    # IReadDescriptor: the standard input, which ends when the first process does.

    def fileno(self) -> int:
        return self.stdin

    def logPrefix(self) -> str:
        return "orgproxy"

    def doRead(self) -> None:
        try:
            data = os.read(self.stdin, 512)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # end of file: nobody holds the other end any more
            self.reactor.removeReader(self)
            self.first_process_gone()
        # Anything else is ignored: the first process writes nothing.

    def connectionLost(self, reason: Failure) -> None:
        self.first_process_gone()

    def first_process_gone(self) -> None:
        if not self.gone:
            self.gone = True
            self.on_gone()

    # Requests to the first process.

    def asker(self, provider: str = "openai", triggering_fields: frozenset[str] = TRIGGERING_FIELDS
              ) -> DiscoveryAsker:
        """What stands in, in this worker, for ``provider``'s discovery in the first process."""
        asking = self.asking.get(provider)
        if asking is None:
            asking = self.asking[provider] = DiscoveryAsker(self, provider, triggering_fields)
        return asking

    def unknown_seen(self, unknown_ids: Mapping[str, str]) -> None:
        """A response from OpenAI carried ids nobody could name: ask for its discovery."""
        self.asker().unknown_seen(unknown_ids)

    def send(self, line: bytes) -> None:
        # A few bytes, far below a pipe's buffer: a write never blocks the reactor unless
        # the first process stopped reading altogether, and then the request is dropped.
        try:
            os.set_blocking(self.requests, False)
            os.write(self.requests, line + b"\n")
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EPIPE, errno.EBADF):
                raise
            log.warn("Could not ask the first process for discovery: {error}", event="discovery_ask_failed",
                     error=e.strerror)


class DiscoveryAsker:
    """One provider's discovery, as a worker sees it: unknown ids worth a walk make it ask
    the first process (see the module's docstring)."""

    def __init__(self, link: FirstProcessLink, provider: str, triggering_fields: frozenset[str]):
        self.link = link
        self.provider = provider
        self.triggering_fields = triggering_fields
        self.asks = Cooldown(link.reactor, link.cooldown)

    def unknown_seen(self, unknown_ids: Mapping[str, str]) -> None:
        if sets_off_discovery(unknown_ids, self.triggering_fields) and self.asks.take():
            self.link.send(discover_line(self.provider))


def discover_line(provider: str) -> bytes:
    return DISCOVER + b" " + provider.encode("ascii")


def discovery_asked(line: bytes) -> str | None:
    """The provider whose discovery a worker's request line asks for, or None."""
    verb, _, provider = line.partition(b" ")
    return provider.decode("ascii", "replace") if verb == DISCOVER and provider else None


class RequestLines:
    """The first process's side: a worker's requests, split into lines as they arrive."""

    def __init__(self, on_line: Callable[[bytes], None]):
        self.on_line = on_line
        self.buffer = b""

    def received(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        if len(self.buffer) > MAX_LINE:
            self.buffer = b""
        for line in lines:
            if line:
                self.on_line(line)

