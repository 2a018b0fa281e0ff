"""Writing the proxy's own answers, and what a log line may show of a request."""

from __future__ import annotations

from http import HTTPStatus

from twisted.web import http, server

from orgproxy.errors import ProxyError, method_not_allowed
from orgproxy.ops.logs import log
from orgproxy.paths import split_uri
from orgproxy.providers import Provider, provider_for_path
from orgproxy.text import escaped


def reason_phrase(status: int) -> bytes:
    """The reason phrase for a status: Twisted's, or the standard library's where Twisted
    has none (431 Request Header Fields Too Large)."""
    known = http.RESPONSES.get(status)
    if known is not None:
        return known
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b"Error"


def send_error(request: server.Request, error: ProxyError, provider: Provider | None = None) -> None:
    """Answer with one of the proxy's own errors, and finish: in the shape of ``provider``
    (by default, of the provider whose paths the request's is among)."""
    body = (provider or provider_for_path(split_uri(request.uri)[0])).error_body(error)
    request.setResponseCode(error.status, reason_phrase(error.status))
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"content-length", b"%d" % len(body))
    if error.retry is not None:
        request.setHeader(b"x-should-retry", b"true" if error.retry else b"false")
    if error.retry_after is not None:
        request.setHeader(b"retry-after", b"%d" % error.retry_after)
    request.write(body)
    request.finish()


def refuse(request: server.Request, error: ProxyError, provider: Provider | None = None) -> None:
    """Answer with ``error`` and log one line for it (never the query, never headers)."""
    send_error(request, error, provider)
    log_refused(request.method, request.uri, error)


def refuse_method(request: server.Request, allowed: tuple[bytes, ...], provider: Provider | None = None) -> None:
    """Answer a method the resource does not serve: 405, with the ones it does in ``Allow``."""
    request.setHeader(b"allow", b", ".join(allowed))
    refuse(request, method_not_allowed(allowed), provider)


def log_refused(method: bytes, target: bytes, error: ProxyError) -> None:
    """The one line for a request the proxy refused (its path, never its query or headers)."""
    log.info("{method} {path} -> {status} {code}", method=printable(method),
             path=printable(split_uri(target)[0]), status=error.status, code=error.code)


def printable(path: bytes) -> str:
    """A raw path as a log line may show it: at most 200 bytes, printable ASCII (any
    other byte as its ``\\xNN`` escape)."""
    return escaped(path[:200].decode("ascii", "backslashreplace"))


def printable_text(text: str) -> str:
    """Text from a body (an id, a name) as a log line may carry it: every character that
    is not printable as its escape (``orgproxy.text.escaped``): an ESC, CR or NUL from an
    upstream never reaches a terminal or splits a line, and a lone surrogate, valid in
    JSON (``"key_\\ud800"``) but not in UTF-8, fails no log observer."""
    return escaped(text)


def path_of(request: server.Request) -> str:
    return printable(split_uri(request.uri)[0])


def method_of(request: server.Request) -> str:
    return printable(request.method)
