"""HTTP in, below the resources: requests capped in size, and answers in OpenAI's error
shape even to requests too malformed to reach a resource."""

from __future__ import annotations

from io import BytesIO

from twisted.python.failure import Failure
from twisted.web import http, server

from orgproxy.errors import (
    ProxyError,
    bad_request,
    headers_too_large,
    internal_error,
    uri_too_long,
)
from orgproxy.logs import log
from orgproxy.paths import split_uri

MAX_REQUEST_BODY = 1024 * 1024


class CappedRequest(server.Request):
    """A request that keeps at most ``max_body`` bytes of body, in memory.

    Twisted spools large bodies to temporary files; the admin API's bodies are tiny, so
    anything over the cap is dropped as it arrives and answered with 413.
    """

    max_body = MAX_REQUEST_BODY
    body_too_large = False

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

    def processingFailed(self, reason: Failure) -> Failure:
        # A fault of the proxy's own: the traceback goes to the operator's log, the client
        # gets a plain OpenAI-shaped 500 instead of Twisted's HTML page.
        log.failure("{method} {path}: internal error", reason,
                    method=self.method.decode("ascii", "replace"), path=printable(split_uri(self.uri)[0]))
        if not self.finished and not self.startedWriting and not self._disconnected:
            send_error(self, internal_error())
        return reason


class OrgproxyChannel(http.HTTPChannel):
    """Twisted's HTTP channel, answering what it refuses in OpenAI's error shape.

    Twisted answers a malformed request with a bare ``400`` and a request line longer
    than its limit with nothing at all; SDKs and people then see a dropped connection.
    The two hooks overridden here are where Twisted does that.
    """

    # Bytes handed to one send(): Twisted's 128 KiB would take a hundred turns of the
    # reactor to send a large page; 1 MiB takes a dozen (3 ms less on the 10 MB page).
    SEND_LIMIT = 1024 * 1024

    def connectionMade(self) -> None:
        super().connectionMade()
        if hasattr(self.transport, "SEND_LIMIT"):
            self.transport.SEND_LIMIT = self.SEND_LIMIT

    def _respondToBadRequestAndDisconnect(self) -> None:
        too_large = getattr(self, "_receivedHeaderSize", 0) > self.totalHeadersSize
        self.answer_and_close(headers_too_large(self.totalHeadersSize) if too_large else bad_request())

    def lineLengthExceeded(self, line: bytes) -> None:
        request_line = getattr(self, "_HTTPChannel__first_line", True)
        self.answer_and_close(uri_too_long(self.MAX_LENGTH) if request_line
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
    noisy = False
    displayTracebacks = False

    def protocol(self) -> http._GenericHTTPChannelProtocol:  # type: ignore[override]
        # What Twisted's own factory builds, with the channel above.
        return http._GenericHTTPChannelProtocol(OrgproxyChannel())

    def log(self, request: server.Request) -> None:
        # No access log: the resource logs one line per request, without query strings
        # and with what the proxy did.
        pass


def send_error(request: server.Request, error: ProxyError) -> None:
    """Answer with one of the proxy's own errors, and finish."""
    body = error.body()
    request.setResponseCode(error.status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"content-length", b"%d" % len(body))
    if error.retry is not None:
        request.setHeader(b"x-should-retry", b"true" if error.retry else b"false")
    if error.retry_after is not None:
        request.setHeader(b"retry-after", b"%d" % error.retry_after)
    request.write(body)
    request.finish()


def printable(path: bytes) -> str:
    return path[:200].decode("ascii", "replace")


