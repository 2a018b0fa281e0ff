"""The upstream's gzip undone, bounded, and checked to the last byte.

OpenAI compresses its answers when asked, and the proxy has to read the JSON to amend
it, so it asks and decompresses. Twisted's ``GzipDecoder`` would decompress each read
whole before anyone could count it (a gzip bomb of a few MiB becomes gigabytes at once)
and ends a stream that is corrupt or cut short as if it were complete. Here output is
produced at most one byte past the reader's limit, so the reader's own cap
(``--max-response-bytes``) holds for decompressed bytes as they are produced; a corrupt
stream, or one that ends before gzip's own end, fails with ``CorruptEncoding``.
"""

from __future__ import annotations

import zlib
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

# zlib's window bits for the gzip container (header and CRC checked), not raw deflate.
_GZIP = 16 + zlib.MAX_WBITS


class CorruptEncoding(Exception):
    """The upstream's compressed body does not decompress: corrupt, or cut short."""


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
    """Passes ``inner`` the decompressed body: at most ``limit`` + 1 bytes, enough for a
    reader capped at ``limit`` to see it is over and give up."""

    def __init__(self, inner: IProtocol, limit: int):
        self.inner = inner
        self.limit = limit
        self.produced = 0
        self.received = False  # any compressed byte at all (a HEAD or 204 has none)
        self.failed = False
        self.decompressor: Any = zlib.decompressobj(_GZIP)

    def makeConnection(self, transport: Any) -> None:
        super().makeConnection(transport)
        self.inner.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        if self.failed or not data:
            return
        self.received = True
        try:
            self.inflate(data)
        except zlib.error as e:
            self.fail(f"the upstream's gzip body is corrupt ({e})")

    def inflate(self, data: bytes) -> None:
        while data and not self.failed:
            if self.decompressor.eof:
                # Another gzip member follows: RFC 1952 lets a stream hold several.
                self.decompressor = zlib.decompressobj(_GZIP)
            room = self.limit + 1 - self.produced
            if room <= 0:
                return  # past the limit: the reader has given up and closed the connection
            out = self.decompressor.decompress(data, room)
            self.produced += len(out)
            if out:
                self.inner.dataReceived(out)
            data = self.decompressor.unused_data if self.decompressor.eof else self.decompressor.unconsumed_tail

    def fail(self, why: str) -> None:
        self.failed = True
        if self.transport is not None:
            self.transport.stopProducing()  # the rest is not worth reading
        self.inner.connectionLost(Failure(CorruptEncoding(why)))

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:
        if self.failed:
            return
        ended_cleanly = reason.check(ResponseDone, PotentialDataLoss)
        if ended_cleanly and self.received and not self.decompressor.eof and self.produced <= self.limit:
            self.fail("the upstream's gzip body ends before its end")
            return
        self.inner.connectionLost(reason)
