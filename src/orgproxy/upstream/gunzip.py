"""The upstream's gzip undone, bounded, and checked to the last byte.

OpenAI compresses its answers when asked, and the proxy has to read the JSON to amend
it, so it asks and decompresses. Twisted's ``GzipDecoder`` would decompress each read
whole before anyone could count it (a gzip bomb of a few MiB becomes gigabytes at once)
and ends a stream that is corrupt or cut short as if it were complete. Here output is
produced at most one byte past the reader's limit, so the reader's own cap
(``--max-response-bytes``) holds for decompressed bytes as they are produced; a corrupt
stream, or one that ends before gzip's own end, fails with ``CorruptEncoding``
(``inflate.py``, which the forwarding parser shares).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.python.components import proxyForInterface
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IBodyProducer, IResponse
from twisted.internet.interfaces import IProtocol
from zope.interface import implementer

from orgproxy.upstream.inflate import CorruptEncoding, Inflater

__all__ = ["BoundedGunzip", "CorruptEncoding", "GunzipAgent", "GunzippedResponse", "Inflater"]

@implementer(IAgent)
class GunzipAgent:
    """An agent that asks for gzip and hands back responses already decompressed (at most
    ``limit`` + 1 bytes of them), without ``Content-Encoding`` and ``Content-Length``.

    Responses in any other encoding are handed back as they came.
    """

    def __init__(self, agent: IAgent, limit: int):
        self.agent = agent
        self.limit = limit

    def request(self, method: bytes, uri: bytes, headers: Headers | None = None,
                bodyProducer: IBodyProducer | None = None) -> Deferred[IResponse]:
        asked = headers.copy() if headers is not None else Headers()
        # Set, not added: treq (discovery) has already added its own "gzip".
        asked.setRawHeaders(b"accept-encoding", [b"gzip"])
        return self.agent.request(method, uri, asked, bodyProducer).addCallback(self.decoded)

    def decoded(self, response: IResponse) -> IResponse:
        encodings = [token.strip().lower() for value in response.headers.getRawHeaders(b"content-encoding", [])
                     for token in value.split(b",") if token.strip()]
        if encodings != [b"gzip"]:
            return response
        response.headers.removeHeader(b"content-encoding")
        response.headers.removeHeader(b"content-length")  # it counted the compressed bytes
        return GunzippedResponse(response, self.limit)


class GunzippedResponse(proxyForInterface(IResponse)):  # type: ignore[misc]
    """``response`` with its body delivered decompressed."""

    length = UNKNOWN_LENGTH

    def __init__(self, response: IResponse, limit: int):
        super().__init__(response)
        self.limit = limit

    def deliverBody(self, protocol: IProtocol) -> None:
        self.original.deliverBody(BoundedGunzip(protocol, self.limit))


class BoundedGunzip(Protocol):
    """Passes ``inner`` the decompressed body (see ``Inflater``)."""

    def __init__(self, inner: IProtocol, limit: int):
        self.inner = inner
        self.inflater = Inflater(limit)
        self.failed = False

    def makeConnection(self, transport: Any) -> None:
        super().makeConnection(transport)
        self.inner.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        if self.failed or not data:
            return
        try:
            pieces = self.inflater.inflate(data)
        except CorruptEncoding as e:
            self.fail(e)
            return
        for piece in pieces:
            self.inner.dataReceived(piece)

    def fail(self, why: CorruptEncoding) -> None:
        self.failed = True
        if self.transport is not None:
            self.transport.stopProducing()  # the rest is not worth reading
        self.inner.connectionLost(Failure(why))

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:
        if self.failed:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            try:
                self.inflater.check_complete()
            except CorruptEncoding as e:
                self.fail(e)
                return
        self.inner.connectionLost(reason)
