"""Every use of a name Twisted keeps private, in one place, each with its reason.

Twisted does not promise these across releases. ``tests/test_twisted_private.py`` checks
each of them, so an upgrade that changes one fails there, loudly, rather than quietly
changing what the daemon answers.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import ILogObserver, Logger
from twisted.web import http
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory


class _QuietClientFactory(_HTTP11ClientFactory):
    # Twisted logs "Starting factory" for every new upstream connection; the pool's
    # factory class is the one place to say no (treq's documented workaround).
    noisy = False


def quiet_pool(pool: HTTPConnectionPool) -> HTTPConnectionPool:
    """The pool, making its connections without a log line each (``pool._factory``)."""
    pool._factory = _QuietClientFactory
    return pool


def send_in_pieces_of(transport: Any, limit: int) -> None:
    """Make a socket transport hand up to ``limit`` bytes to each send() (``SEND_LIMIT``,
    an attribute of Twisted's FileDescriptor that no interface names).

    Twisted's 128 KiB would take a hundred turns of the reactor to send a large page; a
    mebibyte takes a dozen. Transports without it (TLS, memory) are left as they are.
    """
    if hasattr(transport, "SEND_LIMIT"):
        transport.SEND_LIMIT = limit


# What a listening TCP or UNIX port logs when accept() fails (twisted.internet.tcp's
# _accept, through the port's ``_logger``): these two once per connection it could not
# take, the others once per burst.
ACCEPT_REFUSED_FORMATS = frozenset({
    "EMFILE recovery: Closed socket from {address}",
    "Could not accept new connection ({acceptError})",
})
ACCEPT_ERROR_FORMATS = ACCEPT_REFUSED_FORMATS | {
    "EMFILE encountered; releasing reserved file descriptor.",
    "Re-reserving EMFILE recovery file descriptor.",
}


def log_accept_errors_to(port: Any, observer: ILogObserver) -> None:
    """Make a listening port log through ``observer``: Twisted logs every connection it
    closes for want of a file descriptor, hundreds a second under a flood, through the
    port's ``_logger`` and nothing else."""
    if hasattr(port, "_logger"):
        port._logger = Logger(namespace=port._logger.namespace, source=port, observer=observer)


class BadRequestHook(http.HTTPChannel):
    """An HTTPChannel whose answer to a malformed request is ``refuse_malformed``.

    Twisted answers a request it cannot parse in ``_respondToBadRequestAndDisconnect``
    with a bare ``400 Bad Request``; the proxy answers in OpenAI's error shape instead.
    """

    def _respondToBadRequestAndDisconnect(self) -> None:
        self.refuse_malformed()

    def refuse_malformed(self) -> None:
        raise NotImplementedError


def accept_one_per_wakeup(port: Any) -> None:
    """Make a listening TCP or UNIX port accept one connection each time it wakes up.

    Twisted's ports accept up to ``numberAccepts`` connections per wake-up (a hundred),
    so with several workers on one socket the first to wake would take a whole burst (and,
    with keep-alive, its every request) while the others idle. Setting ``numberAccepts``
    once is not enough: after a wake-up that accepted as many as it allowed, the port
    raises it by 20. So it is set again before every accept (``doRead`` wrapped).
    """
    if not hasattr(port, "numberAccepts"):
        return
    accept = port.doRead

    def accept_one() -> Any:
        port.numberAccepts = 1
        return accept()

    port.doRead = accept_one


def leave_shared_socket_open(port: Any) -> None:
    """Make a listening TCP port close its socket without ``shutdown()`` (``_shouldShutdown``).

    Twisted shuts a port's socket down before closing it. With workers the listening socket
    is one socket in several processes, and a shutdown in one of them reaches them all:
    a worker still serving its last wake-up then fails its accept() with EINVAL, a traceback
    in the log. A closed descriptor reaches only its own process. (Twisted already skips
    the shutdown for an adopted socket: the workers'.)
    """
    if hasattr(port, "_shouldShutdown"):
        port._shouldShutdown = False
