"""gzip undone in pieces, bounded, and checked to the last byte; pure.

OpenAI compresses its answers when asked, and the proxy has to read the JSON to amend
it, so it asks and decompresses. Output is produced at most one byte past the reader's
limit, so the reader's own cap (``--max-response-bytes``) holds for decompressed bytes as
they are produced (a gzip bomb of a few MiB never becomes gigabytes); a corrupt stream,
or one that ends before gzip's own end, fails with ``CorruptEncoding``.

Both the forwarding parser (``parse.py``) and discovery's agent (``gunzip.py``) use it.
"""

from __future__ import annotations

import zlib
from typing import Any

# zlib's window bits for the gzip container (header and CRC checked), not raw deflate.
_GZIP = 16 + zlib.MAX_WBITS


class CorruptEncoding(Exception):
    """The upstream's compressed body does not decompress: corrupt, or cut short."""


class Inflater:
    """gzip undone in pieces, pure: at most ``limit`` + 1 bytes come out in all, enough
    for a reader capped at ``limit`` to see it is over and give up."""

    def __init__(self, limit: int):
        self.limit = limit
        self.produced = 0
        self.received = False  # any compressed byte at all (a HEAD or 204 has none)
        self.decompressor: Any = zlib.decompressobj(_GZIP)

    def inflate(self, data: bytes) -> list[bytes]:
        """What ``data`` decompresses to (within the limit); CorruptEncoding if it cannot."""
        out: list[bytes] = []
        if data:
            self.received = True
        try:
            while data:
                if self.decompressor.eof:
                    # Another gzip member follows: RFC 1952 lets a stream hold several.
                    self.decompressor = zlib.decompressobj(_GZIP)
                room = self.limit + 1 - self.produced
                if room <= 0:
                    break  # past the limit: the reader gives up on seeing it
                piece = self.decompressor.decompress(data, room)
                self.produced += len(piece)
                if piece:
                    out.append(piece)
                data = self.decompressor.unused_data if self.decompressor.eof else self.decompressor.unconsumed_tail
        except zlib.error as e:
            raise CorruptEncoding(f"the upstream's gzip body is corrupt ({e})") from None
        return out

    def check_complete(self) -> None:
        """At the body's end: CorruptEncoding if the stream stopped before gzip's own end
        (a body within the limit whose compressed bytes were cut short)."""
        if self.received and not self.decompressor.eof and self.produced <= self.limit:
            raise CorruptEncoding("the upstream's gzip body ends before its end")
