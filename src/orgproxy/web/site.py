"""The site: HTTP in below the resources, and the one place the resource tree is built.

Requests are capped in size, and even requests too malformed to reach a resource are
answered in OpenAI's error shape.
"""

from __future__ import annotations

from io import BytesIO

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.resource import IResource

from orgproxy._twisted_private import BadRequestHook, header_bytes_received, is_reading_request_line
from orgproxy.errors import ProxyError, bad_request, headers_too_large, internal_error, uri_too_long
from orgproxy.ops import metrics
from orgproxy.ops.logs import log
from orgproxy.web.access import AllowList
from orgproxy.web.guard import AccessGuard
from orgproxy.web.resources import Directory, Health, MetricsPage, UnknownReport
from orgproxy.web.respond import method_of, path_of, send_error

MAX_REQUEST_BODY = 1024 * 1024


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
    # The route the request took, as metrics name it (each resource sets its own).
    route = "other"

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

    def processingFailed(self, reason: Failure) -> None:
        # A fault of the proxy's own: the traceback goes to the operator's log, the client
        # gets a plain OpenAI-shaped 500 instead of Twisted's HTML page.
        log.failure("{method} {path}: internal error", reason, method=method_of(self), path=path_of(self))
        if not self.finished and not self.startedWriting and not self._disconnected:
            send_error(self, internal_error())


class OrgproxyChannel(BadRequestHook):
    """Twisted's HTTP channel, answering what it refuses in OpenAI's error shape.

    Twisted answers a malformed request with a bare ``400`` and a request line longer
    than its limit with nothing at all; SDKs and people then see a dropped connection.
    """

    # Bytes handed to one send(): Twisted's 128 KiB would take a hundred turns of the
    # reactor to send a large page; 1 MiB takes a dozen (3 ms less on the 10 MB page).
    SEND_LIMIT = 1024 * 1024

    def connectionMade(self) -> None:
        super().connectionMade()
        if hasattr(self.transport, "SEND_LIMIT"):
            self.transport.SEND_LIMIT = self.SEND_LIMIT

    def refuse_malformed(self) -> None:
        too_large = header_bytes_received(self) > self.totalHeadersSize
        self.answer_and_close(headers_too_large(self.totalHeadersSize) if too_large else bad_request())

    def lineLengthExceeded(self, line: bytes) -> None:
        self.answer_and_close(uri_too_long(self.MAX_LENGTH) if is_reading_request_line(self)
                              else headers_too_large(self.MAX_LENGTH))

    def answer_and_close(self, error: ProxyError) -> None:
        body = error.body()
        head = [b"HTTP/1.1 %d %s" % (error.status, http.RESPONSES.get(error.status, b"Error")),
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

    def log(self, request: server.Request) -> None:
        # Twisted's access log is replaced by the proxy's own line per request (no query
        # strings, and what the proxy did); here each finished request is counted.
        metrics.count_request(getattr(request, "route", "other"), request.method, request.code)


def make_site(*, proxy: IResource, health: Health, unknown_report: UnknownReport,
              allow: AllowList | None, client_token: bytes | None, reactor: IReactorTime) -> OrgproxySite:
    """The whole tree, behind the access guard:

    ``/health``, ``/metrics``, ``/orgproxy/unknown``, and ``/v1/organization/...`` and
    ``/v1/projects/...`` (the proxy, which forwards only the Admin API's paths); every
    other path an OpenAI-shaped 404.
    """
    root = Directory()
    root.putChild(b"health", health)
    root.putChild(b"metrics", MetricsPage())
    own = Directory()
    own.putChild(b"unknown", unknown_report)
    root.putChild(b"orgproxy", own)
    v1 = Directory()
    v1.putChild(b"organization", proxy)
    v1.putChild(b"projects", proxy)  # the Admin API's project role paths (see paths.py)
    root.putChild(b"v1", v1)
    # The reactor drives the connections' idle timeouts.
    return OrgproxySite(AccessGuard(root, allow, client_token), reactor=reactor)
