"""The site: HTTP in below the resources, and the one place the resource tree is built.

Requests are capped in size and in time (a request's line, headers and body must arrive
within ``--header-timeout``, however slowly its bytes trickle), connections in number
(``--max-connections``), and even requests too malformed to reach a resource are
answered in a provider's error shape (Anthropic's once the request line has named a path
under /v1/organizations/, OpenAI's otherwise).
"""

from __future__ import annotations

from io import BytesIO

from typing import Any

from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import IResource

from orgproxy._twisted_private import (
    BadRequestHook,
    header_bytes_received,
    headers_received,
    is_reading_request_line,
)
from orgproxy.errors import (
    ProxyError,
    bad_request,
    headers_too_large,
    internal_error,
    request_timeout,
    too_many_headers,
    uri_too_long,
)
from orgproxy.ops import metrics
from orgproxy.ops.logs import log
from orgproxy.paths import split_uri
from orgproxy.providers import provider_for_path
from orgproxy.web.access import AllowList
from orgproxy.web.connections import Throttled, said_over_capacity
from orgproxy.web.guard import AccessGuard
from orgproxy.web.names import NamesListing
from orgproxy.web.resources import Directory, Health, MetricsPage, UnknownReport
from orgproxy.web.respond import method_of, path_of, reason_phrase, send_error

MAX_REQUEST_BODY = 1024 * 1024
# What every answer says in its Server header: no version to look vulnerabilities up by
# (Twisted's own would be TwistedWeb/26.10.0).
SERVER = b"orgproxy"


class CappedRequest(server.Request):
    """A request that keeps at most ``max_body`` bytes of body, in memory.

    Twisted spools large bodies to temporary files; the admin API's bodies are tiny, so
    anything over the cap is dropped as it arrives and answered with 413.
    """

    max_body = MAX_REQUEST_BODY
    body_too_large = False
    # Twisted would label a body-less answer text/html; the proxy adds no content type
    # the upstream did not send, and its own answers say theirs.
    defaultContentType = None
    # The route the request took, as metrics name it (each resource sets its own), and
    # the provider whose proxy answered it (set by the proxy leaves).
    route = "other"
    provider = metrics.NO_PROVIDER

    def gotLength(self, length: int | None) -> None:
        self.content = BytesIO()
        if length is not None and length > self.max_body:
            self.body_too_large = True

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_too_large:
            return
        if self.content.tell() + len(data) > self.max_body:
            self.body_too_large = True
            self.content = BytesIO()
            return
        self.content.write(data)

    def write(self, data: bytes) -> None:
        if not self.startedWriting:
            # Set as the head goes out (finish() without a body writes too), so every
            # answer says it, a proxied one included: the upstream's Server describes a
            # server the client is not talking to, as nginx's proxy_hide_header holds.
            self.responseHeaders.setRawHeaders(b"server", [SERVER])
        super().write(data)

    def process(self) -> None:
        # Twisted answers the asterisk form (OPTIONS *, GET *) itself, before any resource
        # or the access guard: an empty 200 or a bare 405. Here it is one more path the
        # proxy does not serve: through the guard, to an OpenAI-shaped 404.
        if self.path == b"*":
            self.path = b"/*"
        super().process()

    def processingFailed(self, reason: Failure) -> None:
        # A fault of the proxy's own: the traceback goes to the operator's log, the client
        # gets a plain JSON 500 (in its path's provider's shape) instead of Twisted's HTML page.
        log.failure("{method} {path}: internal error", reason, method=method_of(self), path=path_of(self))
        if not self.finished and not self.startedWriting and not self._disconnected:
            send_error(self, internal_error())


class OrgproxyChannel(BadRequestHook):
    """Twisted's HTTP channel, answering what it refuses in a provider's error shape, and
    giving each request a deadline to arrive whole.

    Twisted answers a malformed request with a bare ``400`` and a request line longer
    than its limit with nothing at all; SDKs and people then see a dropped connection.
    Its only timer is an idle timeout that every byte resets, so a client sending a
    header byte a minute would hold a connection for days.
    """

    # Bytes handed to one send(): Twisted's 128 KiB would take a hundred turns of the
    # reactor to send a large page; 1 MiB takes a dozen (3 ms less on the 10 MB page).
    SEND_LIMIT = 1024 * 1024

    # Seconds from a request's first byte (or the connection's start) until its line,
    # headers and body have all arrived; None for no deadline. Set by the site.
    header_timeout: float | None = None
    deadline: IDelayedCall | None = None
    # The target of the request line of the request arriving, once that line has come:
    # the path whose provider's error shape an answer from the channel takes.
    request_target: bytes | None = None
    awaiting_request = True  # no request being answered: what arrives starts the next one
    request_begun = False  # a byte of the next request has arrived

    def connectionMade(self) -> None:
        super().connectionMade()
        if hasattr(self.transport, "SEND_LIMIT"):
            self.transport.SEND_LIMIT = self.SEND_LIMIT
        self.start_deadline()  # a connection that never sends a request is closed too

    _host: IAddress | None = None

    def getHost(self) -> IAddress:
        # Asked once per request (by twisted.web's Request): a connection's own address
        # never changes, and asking the socket is a system call.
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def dataReceived(self, data: bytes) -> None:
        if self.awaiting_request and data:
            self.request_begun = True
            if self.deadline is None:
                self.start_deadline()
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self.request_target is None and line:  # the request line (a blank one is skipped)
            parts = line.split(b" ")
            self.request_target = parts[1] if len(parts) == 3 else b""
        super().lineReceived(line)

    def start_deadline(self) -> None:
        if self.header_timeout is not None:
            self.deadline = self.callLater(self.header_timeout, self.deadline_passed)

    def allContentReceived(self) -> None:
        if self.deadline is not None:
            if self.deadline.active():
                self.deadline.cancel()
            self.deadline = None
        self.awaiting_request = self.request_begun = False
        self.request_target = None
        super().allContentReceived()

    def requestDone(self, request: server.Request) -> None:
        self.awaiting_request = True
        super().requestDone(request)

    def deadline_passed(self) -> None:
        self.deadline = None
        metrics.count_connection_closed("header_timeout")
        if self.request_begun:
            self.answer_and_close(request_timeout(self.header_timeout or 0))
        else:
            self.loseConnection()

    def connectionLost(self, reason: Failure) -> None:
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()
        self.deadline = None
        site = getattr(self, "site", None)
        if isinstance(site, OrgproxySite):
            site.connection_closed()
        super().connectionLost(reason)

    def refuse_malformed(self) -> None:
        if header_bytes_received(self) > self.totalHeadersSize:
            self.answer_and_close(headers_too_large(self.totalHeadersSize))
        elif headers_received(self) > self.maxHeaders:
            self.answer_and_close(too_many_headers(self.maxHeaders))
        else:
            self.answer_and_close(bad_request())

    def lineLengthExceeded(self, line: bytes) -> None:
        self.answer_and_close(uri_too_long(self.MAX_LENGTH) if is_reading_request_line(self)
                              else headers_too_large(self.MAX_LENGTH))

    def answer_and_close(self, error: ProxyError) -> None:
        body = provider_for_path(split_uri(self.request_target or b"")[0]).error_body(error)
        head = [b"HTTP/1.1 %d %s" % (error.status, reason_phrase(error.status)), b"Server: " + SERVER,
                b"Content-Type: application/json", b"Content-Length: %d" % len(body), b"Connection: close"]
        if error.retry is not None:
            head.append(b"x-should-retry: " + (b"true" if error.retry else b"false"))
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.loseConnection()


class OrgproxySite(server.Site):
    requestFactory = CappedRequest
    # The channel itself, not Twisted's wrapper that would negotiate HTTP/2: orgproxy
    # speaks HTTP/1.1, and the wrapper costs a call per read.
    protocol = OrgproxyChannel
    noisy = False
    displayTracebacks = False

    header_timeout: float | None = None  # given to each channel
    max_connections: int | None = None  # beyond, a new connection is closed at once
    connections = 0  # open now
    over_capacity: Throttled | None = None

    def buildProtocol(self, addr: IAddress) -> Any:
        if self.max_connections is not None and self.connections >= self.max_connections:
            # None: the port closes the new socket at once, and the ones open go on.
            metrics.count_connection_closed("max_connections")
            if self.over_capacity is not None:
                self.over_capacity.happened()
            return None
        channel = super().buildProtocol(addr)
        channel.header_timeout = self.header_timeout
        self.connections += 1
        return channel

    def connection_closed(self) -> None:
        self.connections -= 1

    def log(self, request: server.Request) -> None:
        # Twisted's access log is replaced by the proxy's own line per request (no query
        # strings, and what the proxy did); here each finished request is counted.
        metrics.count_request(getattr(request, "route", "other"), request.method, request.code,
                              getattr(request, "provider", metrics.NO_PROVIDER))


def make_site(*, proxy: IResource, health: Health, unknown_report: UnknownReport,
              allow: AllowList | None, client_token: bytes | None, reactor: IReactorTime,
              anthropic_proxy: IResource | None = None, header_timeout: float | None = None,
              max_connections: int | None = None) -> OrgproxySite:
    """The whole tree, behind the access guard:

    ``/health``, ``/metrics``, ``/orgproxy/unknown``, ``/orgproxy/names``, ``/v1/organization/...`` and
    ``/v1/projects/...`` (the proxy to OpenAI, which forwards only the Admin API's paths)
    and ``/v1/organizations/...`` (the proxy to Anthropic, another leaf of the same
    class); every other path a 404 (Anthropic-shaped under ``/v1/organizations``,
    OpenAI-shaped elsewhere).
    """
    root = Directory()
    root.putChild(b"health", health)
    root.putChild(b"metrics", MetricsPage())
    own = Directory()
    own.putChild(b"unknown", unknown_report)
    own.putChild(b"names", NamesListing(health.current))
    root.putChild(b"orgproxy", own)
    v1 = Directory()
    v1.putChild(b"organization", proxy)
    v1.putChild(b"projects", proxy)  # the Admin API's project role paths (see paths.py)
    if anthropic_proxy is not None:
        v1.putChild(b"organizations", anthropic_proxy)
    root.putChild(b"v1", v1)
    # The reactor drives the connections' idle timeouts and deadlines.
    site = OrgproxySite(AccessGuard(root, allow, client_token), reactor=reactor)
    site.header_timeout = header_timeout
    site.max_connections = max_connections
    if max_connections is not None:
        site.over_capacity = Throttled(reactor, said_over_capacity(max_connections))
    return site
