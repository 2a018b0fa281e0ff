"""The upstream's answer, byte by byte (``orgproxy.upstream.parse``).

The response reader is pure: bytes in, whole or in pieces as small as one byte, and what
it makes of them out. (Its verdicts beside h11's: test_parse_h11.py.)
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import tracemalloc

import pytest

import orgproxy.upstream.parse as parse
from orgproxy.upstream.failures import MalformedResponse, ResponseTooLarge
from orgproxy.upstream.gunzip import CorruptEncoding
from orgproxy.upstream.parse import (
    FREE_CHUNKED_BYTES,
    MAX_CHUNK_LINE,
    MAX_HEAD_BYTES,
    MAX_HEADER_LINES,
    MIN_AVERAGE_CHUNK,
    ONE_BUFFER_BYTES,
    SPARE_BYTES,
    ResponseReader,
)

LIMIT = 1000
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"



def read(data: bytes, method: bytes = b"GET", piece: int | None = None, limit: int = LIMIT,
         closed: bool = False) -> ResponseReader:
    """A reader fed ``data`` (whole, or ``piece`` bytes at a time); the connection closed
    after it when ``closed``. Asserts that it is complete."""
    reader = ResponseReader(method, limit)
    pieces = [data] if piece is None else [data[i:i + piece] for i in range(0, len(data), piece)]
    complete = False
    for part in pieces:
        complete = reader.feed(part)
    if closed:
        complete = reader.connection_closed()
    assert complete
    return reader


@pytest.fixture(params=[None, 1, 7], ids=["whole", "byte by byte", "7 bytes at a time"])
def piece(request: pytest.FixtureRequest) -> int | None:
    return request.param  # type: ignore[no-any-return]



# --- framing ----------------------------------------------------------------------------------

def test_a_sized_body_is_read_to_its_length(piece: int | None) -> None:
    reader = read(OK_HEAD + b"Content-Length: 12\r\n\r\n{\"ok\": true}", piece=piece)
    assert reader.head is not None
    assert (reader.head.status, reader.head.phrase, reader.body()) == (200, b"OK", b'{"ok": true}')
    assert reader.keep_alive


def test_a_chunked_body_with_extensions_and_trailers_is_decoded(piece: int | None) -> None:
    wire = (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
            b"5;name=value\r\n{\"ok\"\r\n7\r\n: true}\r\n0\r\nX-Checksum: abc\r\n\r\n")
    reader = read(wire, piece=piece)
    assert reader.body() == b'{"ok": true}' and reader.keep_alive
    assert reader.head is not None and reader.head.values(b"x-checksum") == []  # trailers dropped


def test_a_body_without_length_is_read_until_the_connection_closes(piece: int | None) -> None:
    reader = ResponseReader(b"GET", LIMIT)
    assert not reader.feed(OK_HEAD + b"\r\n[1, 2")
    assert not reader.feed(b", 3]")
    assert reader.connection_closed()
    assert reader.body() == b"[1, 2, 3]" and not reader.keep_alive


@pytest.mark.parametrize(("method", "status"), [(b"HEAD", 200), (b"GET", 204), (b"GET", 304)])
def test_heads_204s_and_304s_have_no_body_whatever_the_length_says(method: bytes, status: int) -> None:
    reader = read(b"HTTP/1.1 %d X\r\nContent-Length: 42\r\n\r\n" % status, method=method)
    # ... and their connection is not reused: a body sent anyway would come after the end.
    assert reader.body() == b"" and not reader.keep_alive
    assert reader.head is not None and reader.head.values(b"content-length") == [b"42"]


def test_informational_answers_are_skipped_for_the_final_one(piece: int | None) -> None:
    wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + OK_HEAD + \
        b"Content-Length: 2\r\n\r\n{}"
    reader = read(wire, piece=piece)
    assert reader.head is not None and (reader.head.status, reader.body()) == (200, b"{}")
    assert reader.head.values(b"link") == []


def test_bare_line_feeds_are_taken_as_line_ends() -> None:
    reader = read(b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}")
    assert reader.body() == b"{}"


def test_header_names_are_lower_cased_and_repeated_ones_kept_in_order() -> None:
    reader = read(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\r\nx-a:  2 \r\nX-B:\r\n\r\n")
    assert reader.head is not None
    assert reader.head.headers == [(b"x-a", [b"1", b"2"]), (b"content-length", [b"0"]), (b"x-b", [b""])]


def test_a_status_line_without_a_reason_is_accepted() -> None:
    reader = read(b"HTTP/1.1 429\r\nContent-Length: 0\r\n\r\n")
    assert reader.head is not None and (reader.head.status, reader.head.phrase) == (429, b"")


def test_the_same_content_length_repeated_is_one_length() -> None:
    assert read(OK_HEAD + b"Content-Length: 2\r\nContent-Length: 2, 2\r\n\r\n{}").body() == b"{}"


# --- whether the connection may carry the next request -----------------------------------------

@pytest.mark.parametrize("wire", [
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n",  # bytes nobody asked for
], ids=["connection close", "HTTP/1.0", "both framings", "bytes after the answer"])
def test_a_connection_is_not_reused_when_the_answer_says_so_or_cannot_be_trusted(wire: bytes) -> None:
    reader = read(wire)
    assert not reader.keep_alive


def test_transfer_encoding_wins_over_content_length() -> None:
    wire = OK_HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    assert read(wire).body() == b"abc"


# --- what cannot be trusted ---------------------------------------------------------------------

@pytest.mark.parametrize("wire", [
    b"HTTP/2 200 OK\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Space : a\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Cr: a\rb\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n",
], ids=["HTTP/2", "not HTTP", "status of 4 digits", "folded header", "space before colon", "no colon",
        "NUL in a value", "CR in a value", "two lengths", "negative length", "hex length",
        "switching protocols", "chunk size not hex", "chunk longer than its size"])
def test_a_malformed_answer_is_refused(wire: bytes) -> None:
    reader = ResponseReader(b"GET", LIMIT)
    with pytest.raises(MalformedResponse):
        reader.feed(wire)


def test_a_head_that_never_ends_is_refused_once_past_its_bound() -> None:
    reader = ResponseReader(b"GET", LIMIT)
    reader.feed(b"HTTP/1.1 200 OK\r\n")
    line = b"X-Padding: " + b"p" * 1000 + b"\r\n"
    with pytest.raises(MalformedResponse):
        for _ in range(MAX_HEAD_BYTES // len(line) + 2):
            reader.feed(line)


def test_a_chunk_size_line_that_never_ends_is_refused() -> None:
    reader = ResponseReader(b"GET", LIMIT)
    reader.feed(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(MalformedResponse):
        reader.feed(b"1;" + b"e" * 5000)


def test_a_sized_body_cut_short_by_the_close_is_not_complete() -> None:
    reader = ResponseReader(b"GET", LIMIT)
    assert not reader.feed(OK_HEAD + b"Content-Length: 10\r\n\r\n12345")
    assert not reader.connection_closed()


# --- the cap, and gzip ---------------------------------------------------------------------------

def test_a_length_over_the_cap_is_refused_before_its_body() -> None:
    with pytest.raises(ResponseTooLarge):
        ResponseReader(b"GET", LIMIT).feed(OK_HEAD + b"Content-Length: %d\r\n\r\n" % (LIMIT + 1))


def test_a_chunk_over_the_cap_is_refused_from_its_size_line() -> None:
    with pytest.raises(ResponseTooLarge):
        ResponseReader(b"GET", LIMIT).feed(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % (LIMIT + 1))


def test_a_body_read_until_close_is_refused_once_past_the_cap() -> None:
    reader = ResponseReader(b"GET", LIMIT)
    reader.feed(OK_HEAD + b"\r\n" + b"x" * LIMIT)
    with pytest.raises(ResponseTooLarge):
        reader.feed(b"x")


def test_a_gzipped_chunked_body_is_decoded_within_the_cap(piece: int | None) -> None:
    compressed = gzip.compress(b'{"data": []}')
    wire = OK_HEAD + b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + \
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(compressed), compressed)
    assert read(wire, piece=piece).body() == b'{"data": []}'


def test_a_gzip_bomb_is_refused_at_the_cap() -> None:
    compressed = gzip.compress(b"0" * 100 * LIMIT)
    with pytest.raises(ResponseTooLarge):
        ResponseReader(b"GET", LIMIT).feed(OK_HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                                           % (len(compressed), compressed))


def test_a_gzipped_body_cut_short_is_corrupt() -> None:
    compressed = gzip.compress(b'{"data": [1, 2, 3]}')[:-6]
    with pytest.raises(CorruptEncoding):
        ResponseReader(b"GET", LIMIT).feed(OK_HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                                           % (len(compressed), compressed))



# --- hostile upstreams: bounded, whatever they send -------------------------------------------

def test_a_head_sent_a_byte_at_a_time_is_read_in_linear_time() -> None:
    reader = ResponseReader(b"GET", LIMIT)
    searched: list[int] = []

    class Counting:
        def search(self, buffer: bytes, start: int = 0) -> object:
            searched.append(len(buffer) - start)
            return real.search(buffer, start)
    real = parse._END_OF_HEAD
    parse._END_OF_HEAD = Counting()  # type: ignore[assignment]
    try:
        wire = OK_HEAD + b"X-Pad: " + b"p" * 2000 + b"\r\nContent-Length: 0\r\n\r\n"
        for byte in range(len(wire)):
            reader.feed(wire[byte:byte + 1])
    finally:
        parse._END_OF_HEAD = real
    assert reader.complete
    assert sum(searched) < 5 * len(wire)  # each byte looked at a few times, not once per byte after it


def test_endless_informational_answers_are_refused() -> None:
    reader = ResponseReader(b"GET", LIMIT)
    with pytest.raises(MalformedResponse):
        reader.feed(b"HTTP/1.1 100 Continue\r\n\r\n" * 20)


def test_endless_trailers_are_refused() -> None:
    reader = ResponseReader(b"GET", LIMIT)
    reader.feed(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\n")
    line = b"X-Trailer: " + b"t" * 88 + b"\r\n"
    with pytest.raises(MalformedResponse):
        for _ in range(MAX_HEAD_BYTES // len(line) + 2):
            reader.feed(line)


def test_a_gzip_stream_that_inflates_to_nothing_is_capped_on_its_compressed_bytes() -> None:
    empty_member = gzip.compress(b"")
    reader = ResponseReader(b"GET", LIMIT)
    reader.feed(OK_HEAD + b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(ResponseTooLarge):
        for _ in range(LIMIT // len(empty_member) + 2):
            reader.feed(b"%x\r\n%s\r\n" % (len(empty_member), empty_member))


def test_a_large_announced_body_read_into_one_buffer_comes_out_whole() -> None:
    body = bytes(range(256)) * (ONE_BUFFER_BYTES // 256 + 1000)
    reader = ResponseReader(b"GET", 4 * ONE_BUFFER_BYTES)
    wire = OK_HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body
    complete = False
    for start in range(0, len(wire), 65536):
        complete = reader.feed(wire[start:start + 65536])
    assert complete and reader.keep_alive
    assert reader.body() == body


def test_a_large_announced_body_cut_short_is_not_complete() -> None:
    reader = ResponseReader(b"GET", 4 * ONE_BUFFER_BYTES)
    assert not reader.feed(OK_HEAD + b"Content-Length: %d\r\n\r\n" % (2 * ONE_BUFFER_BYTES) + b"x" * ONE_BUFFER_BYTES)
    assert not reader.connection_closed()


# --- what is refused rather than passed on ------------------------------------------------------

@pytest.mark.parametrize("codings", [
    [b"gzip, chunked"], [b"chunked, chunked"], [b"gzip"], [b"identity"], [b"chunked", b"chunked"],
    [b"deflate", b"chunked"], [b"chunked;q=1"],
], ids=["gzip then chunked", "chunked twice", "gzip", "identity", "two headers", "two headers, deflate",
        "a parameter"])
def test_any_transfer_coding_but_chunked_alone_is_refused(codings: list[bytes]) -> None:
    wire = OK_HEAD + b"".join(b"Transfer-Encoding: %s\r\n" % coding for coding in codings) + b"\r\n2\r\n{}\r\n0\r\n\r\n"
    with pytest.raises(MalformedResponse, match="transfer coding"):
        ResponseReader(b"GET", LIMIT).feed(wire)


def test_chunked_is_taken_in_any_case() -> None:
    assert read(OK_HEAD + b"Transfer-Encoding: Chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n").body() == b"{}"


@pytest.mark.parametrize("control", [b"\x00", b"\x0b", b"\x0c", b"\x1b", b"\x7f", b"\x01", b"\x1f"],
                         ids=["NUL", "VT", "FF", "ESC", "DEL", "SOH", "US"])
@pytest.mark.parametrize("where", ["phrase", "header value", "trailer value"])
def test_a_control_character_in_the_phrase_or_a_value_is_refused(control: bytes, where: str) -> None:
    text = b"a" + control + b"b"
    wire = {
        "phrase": b"HTTP/1.1 200 O%sK\r\nContent-Length: 2\r\n\r\n{}" % control,
        "header value": OK_HEAD + b"X-Note: %s\r\nContent-Length: 2\r\n\r\n{}" % text,
        "trailer value": OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-Note: %s\r\n\r\n" % text,
    }[where]
    with pytest.raises(MalformedResponse, match="control character"):
        ResponseReader(b"GET", LIMIT).feed(wire)


def test_tabs_and_text_beyond_ascii_in_values_are_kept() -> None:
    reader = read(b"HTTP/1.1 200 D\xc3\xa9j\xc3\xa0\tvu\r\nX-Note: a\tb \xc3\xa9\r\nContent-Length: 0\r\n\r\n")
    assert reader.head is not None
    assert (reader.head.phrase, reader.head.values(b"x-note")) == (b"D\xc3\xa9j\xc3\xa0\tvu", [b"a\tb \xc3\xa9"])


def test_a_hundred_header_lines_are_taken_and_more_refused() -> None:
    lines = b"".join(b"X-H%d: %d\r\n" % (n, n) for n in range(MAX_HEADER_LINES - 1))
    reader = read(b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 0\r\n\r\n")
    assert reader.head is not None and len(reader.head.headers) == MAX_HEADER_LINES
    with pytest.raises(MalformedResponse, match="header lines"):
        ResponseReader(b"GET", LIMIT).feed(b"HTTP/1.1 200 OK\r\nX-One-More: 1\r\n" + lines + b"Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize("wire", [
    b"2\n{}\r\n0\r\n\r\n",
    b"2;ext=1\n{}\r\n0\r\n\r\n",
    b"2\r\n{}\n0\r\n\r\n",
    b"2\r\n{}0\r\n\r\n",
    b"2\r\n{}\r\n0\n\r\n",
    b"2\r\n{}\r\n0\r\nX-Folded: a\r\n b\r\n\r\n",
    b"2\r\n{}\r\n0\r\nno colon\r\n\r\n",
], ids=["bare LF after a size", "bare LF after extensions", "bare LF after the data", "no line end after the data",
        "bare LF after the last size", "folded trailer", "trailer without a colon"])
def test_chunk_framing_is_exact(wire: bytes) -> None:
    with pytest.raises(MalformedResponse):
        read(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + wire)


# --- bounded, whatever the upstream sends -------------------------------------------------------

def test_an_announced_length_is_not_allocated_before_its_bytes_come() -> None:
    """A head announcing 60 MiB and a few bytes of body hold a few bytes, not 60 MiB."""
    announced = 60 * 1024 * 1024
    reader = ResponseReader(b"GET", 64 * 1024 * 1024)
    tracemalloc.start()
    try:
        reader.feed(OK_HEAD + b"Content-Length: %d\r\n\r\n" % announced + b'{"object": "page"')
        reader.feed(b", " * 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not reader.complete
    assert peak < 64 * 1024  # what came, and the reader's own bookkeeping


def test_a_large_announced_body_holds_at_most_three_times_what_came_until_it_is_whole() -> None:
    """Pieces until half has come, then one buffer of the announced length (into which
    the pieces are copied, then let go)."""
    announced = 8 * ONE_BUFFER_BYTES
    body = bytes(range(256)) * (announced // 256)
    reader = ResponseReader(b"GET", 2 * announced)
    reader.feed(OK_HEAD + b"Content-Length: %d\r\n\r\n" % announced)
    tracemalloc.start()
    try:
        for start in range(0, announced, 65536):
            piece = body[start:start + 65536]
            tracemalloc.reset_peak()
            reader.feed(piece)
            _, peak = tracemalloc.get_traced_memory()
            assert peak < 3 * (start + len(piece)) + SPARE_BYTES + 65536, start
    finally:
        tracemalloc.stop()
    assert reader.complete and reader.body() == body


def chunked(*pieces: bytes, extension: bytes = b"") -> bytes:
    return OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(
        b"%x%s\r\n%s\r\n" % (len(piece), extension, piece) for piece in pieces) + b"0\r\n\r\n"


def test_a_small_body_may_come_in_chunks_as_small_as_a_byte() -> None:
    body = b"x" * (FREE_CHUNKED_BYTES // 8)  # in chunks of a byte: 6 bytes each on the wire
    assert read(chunked(*(body[at:at + 1] for at in range(len(body)))), limit=len(body)).body() == body


@pytest.mark.parametrize("size", [1, 2, 64, MIN_AVERAGE_CHUNK - 16])
def test_tiny_chunks_are_refused_past_the_first_bytes(size: int) -> None:
    reader = ResponseReader(b"GET", 64 * 1024 * 1024)
    wire = chunked(*[b"x" * size] * (FREE_CHUNKED_BYTES // (size + 5) + 100))  # past the free bytes
    with pytest.raises(MalformedResponse, match="chunks"):
        reader.feed(wire)
    # Refused near the free bytes' end, not after reading everything.
    assert reader.size < FREE_CHUNKED_BYTES + 4 * MIN_AVERAGE_CHUNK


def test_chunks_of_the_minimum_average_are_taken() -> None:
    body = b"y" * (MIN_AVERAGE_CHUNK * 1024)
    pieces = [body[start:start + MIN_AVERAGE_CHUNK] for start in range(0, len(body), MIN_AVERAGE_CHUNK)]
    assert read(chunked(*pieces), limit=len(body)).body() == body


def test_long_extensions_on_small_chunks_are_refused_past_the_first_bytes() -> None:
    piece = b"z" * MIN_AVERAGE_CHUNK
    reader = ResponseReader(b"GET", 64 * 1024 * 1024)
    with pytest.raises(MalformedResponse, match="framing"):
        reader.feed(chunked(*[piece] * 1000, extension=b";e=" + b"e" * (MAX_CHUNK_LINE - 10)))
    assert reader.size < FREE_CHUNKED_BYTES


class CountingBytes(bytes):
    """Bytes whose slices are counted (and are CountingBytes too), to see how much of a read
    the reader copies."""

    copied = 0

    def __getitem__(self, key):  # type: ignore[no-untyped-def,override]
        piece = bytes.__getitem__(self, key)
        if isinstance(key, slice):
            CountingBytes.copied += len(piece)
            return CountingBytes(piece)
        return piece


def test_a_read_of_many_small_chunks_is_parsed_in_linear_time() -> None:
    reader = ResponseReader(b"GET", LIMIT * 100)
    reader.feed(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    wire = b"".join(b"3\r\nabc\r\n" for _ in range(FREE_CHUNKED_BYTES // 16)) + b"0\r\n\r\n"
    CountingBytes.copied = 0
    assert reader.feed(CountingBytes(wire))
    assert reader.body() == b"abc" * (FREE_CHUNKED_BYTES // 16)
    # Each chunk's data copied out once, not the rest of the read once per chunk.
    assert CountingBytes.copied < 2 * len(wire)


def test_the_parser_imports_no_twisted() -> None:
    """Pure: bytes in, a verdict out; no reactor, no I/O."""
    loaded = "import sys, orgproxy.upstream.parse; print(sorted(m for m in sys.modules if m.startswith(('twisted', 'zope'))))"
    assert subprocess.run([sys.executable, "-c", loaded], capture_output=True, text=True, check=True).stdout == "[]\n"
