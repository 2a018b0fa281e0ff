"""The upstream's gzip undone by ``BoundedGunzip``, fed by hand: output never runs more
than a byte past the reader's limit, however much the input would expand, and a stream
that is corrupt or cut short fails rather than ending as if complete."""

from __future__ import annotations

import gzip
import zlib

from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss

from orgproxy.upstream.gunzip import BoundedGunzip, CorruptEncoding

BODY = b'{"object": "page", "data": [{"api_key_id": "key_1"}], "has_more": false}'


class Reader(Protocol):
    """What the reader behind the decompressor is handed, read by read."""

    def __init__(self) -> None:
        self.reads: list[bytes] = []
        self.ended: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.reads.append(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:
        assert self.ended is None, "told twice that the body ended"
        self.ended = reason


def feed(data: bytes, limit: int = 10_000, piece: int = 7, ending: Failure | None = None
         ) -> tuple[Reader, StringTransport]:
    reader, transport = Reader(), StringTransport()
    gunzip = BoundedGunzip(reader, limit)
    gunzip.makeConnection(transport)
    for start in range(0, len(data), piece):
        gunzip.dataReceived(data[start:start + piece])
    gunzip.connectionLost(ending or Failure(ResponseDone()))
    return reader, transport


def test_a_gzipped_body_read_in_small_pieces_comes_out_whole() -> None:
    reader, transport = feed(gzip.compress(BODY))
    assert b"".join(reader.reads) == BODY
    assert reader.ended is not None and reader.ended.check(ResponseDone)
    assert not transport.disconnecting


def test_a_body_ended_by_closing_the_connection_is_whole_too() -> None:
    reader, _ = feed(gzip.compress(BODY), ending=Failure(PotentialDataLoss()))
    assert b"".join(reader.reads) == BODY and reader.ended is not None and reader.ended.check(PotentialDataLoss)


def test_several_gzip_members_are_one_body() -> None:
    reader, _ = feed(gzip.compress(BODY[:20]) + gzip.compress(BODY[20:]), piece=1000)
    assert b"".join(reader.reads) == BODY


def test_no_body_at_all_is_an_empty_body() -> None:
    # A HEAD, a 204 or a 304 says gzip and sends nothing.
    reader, _ = feed(b"")
    assert reader.reads == [] and reader.ended is not None and reader.ended.check(ResponseDone)


def test_a_bomb_never_produces_more_than_a_byte_past_the_limit() -> None:
    # 64 MiB in about 64 KB: 64 gzip members of a MiB each.
    bomb = gzip.compress(b"\0" * (1024 * 1024), compresslevel=9) * 64
    assert len(bomb) < 100_000
    limit = 1000
    reader, _ = feed(bomb, limit=limit, piece=16 * 1024)
    assert sum(map(len, reader.reads)) == limit + 1
    assert max(map(len, reader.reads)) <= limit + 1


def test_corrupt_data_fails_the_body_and_stops_reading() -> None:
    compressed = bytearray(gzip.compress(BODY * 20))
    compressed[len(compressed) // 2] ^= 0xFF
    reader, transport = feed(bytes(compressed))
    assert reader.ended is not None and reader.ended.check(CorruptEncoding)
    assert transport.disconnecting or transport.producerState == "stopped"


def test_a_body_that_is_not_gzip_at_all_fails() -> None:
    reader, _ = feed(BODY)
    assert reader.ended is not None and reader.ended.check(CorruptEncoding)


def test_a_bad_checksum_fails() -> None:
    compressed = bytearray(gzip.compress(BODY))
    compressed[-8] ^= 0xFF  # the CRC-32 of the trailer
    reader, _ = feed(bytes(compressed))
    assert reader.ended is not None and reader.ended.check(CorruptEncoding)


def test_a_body_cut_short_fails_rather_than_ending() -> None:
    compressed = gzip.compress(BODY * 50)
    for cut in (10, len(compressed) // 2, len(compressed) - 1):
        reader, _ = feed(compressed[:cut])
        assert reader.ended is not None and reader.ended.check(CorruptEncoding), cut


def test_a_connection_lost_is_passed_on_as_it_is() -> None:
    lost = Failure(ResponseFailed([Failure(ConnectionError("reset"))]))
    reader, _ = feed(gzip.compress(BODY)[:10], ending=lost)
    assert reader.ended is lost


def test_deflate_inside_a_gzip_container_only() -> None:
    # Raw zlib data is not the gzip the proxy asked for.
    reader, _ = feed(zlib.compress(BODY))
    assert reader.ended is not None and reader.ended.check(CorruptEncoding)
