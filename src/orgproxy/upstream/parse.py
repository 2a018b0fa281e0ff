"""An upstream's HTTP/1.1 answer, read from bytes as they arrive; pure (no Twisted, no
I/O, no clock), and tested against ``h11`` (tests/upstream/test_parse_h11.py).

It follows RFC 9112: a response's body is framed by the request's method and the status
(HEAD, 1xx, 204 and 304 have none), then Transfer-Encoding (``chunked``), then
Content-Length (repeated only with one value), else until the connection closes.
Whatever it cannot trust fails the answer as ``MalformedResponse`` (the client gets a 502
``upstream_bad_response`` and the connection is dropped), never passed on in part:

- a status line that is not HTTP/1.0 or 1.1, a header line that is not ``name: value``
  (obsolete line folding and a space before the colon included: RFC 9112, 5.1-5.2 lets a
  proxy refuse them), a head over ``MAX_HEAD_BYTES`` or over ``MAX_HEADER_LINES`` lines;
- a control character (NUL to US but TAB, and DEL) in the status phrase or in a header
  or trailer value. Refused rather than dropped or cleaned: such bytes are not HTTP, the
  Admin APIs never send them, and they mean something between is broken or hostile (curl
  drops the connection on a NUL, a terminal obeys an ESC); a header dropped without a
  word would change the answer's meaning, a 502 says what happened;
- a transfer coding other than ``chunked`` alone: the proxy would hand on bytes in a
  coding nobody undid, labelled as JSON;
- conflicting Content-Lengths, one that is not a number, chunk framing that is not
  exact (a chunk's size line and the CRLF after its data end with CRLF, not a bare LF);
- chunks too small for their cost: past the first ``FREE_CHUNKED_BYTES`` (64 KiB) of a
  chunked body on the wire, its chunks must carry on average ``MIN_AVERAGE_CHUNK`` (1 KiB)
  of data, and its data must outweigh its framing (size lines, extensions, line ends).
  Each chunk costs the parser microseconds whatever its size: in 1-byte chunks an answer
  of the size cap would cost minutes of the reactor, in 1 KiB ones well under a second;
  and long extensions on 1-byte chunks would be gigabytes read without nearing the size
  cap. A small page may be chunked as finely as a server likes; larger ones come from
  real servers in chunks of kilobytes (a Go server's or nginx's buffer is 4 to 8 KiB).

A body is kept as it arrives (``ResponseReader.body`` joins it once); a body announced
large is copied into one buffer of its length only once half of it has arrived, so that
an upstream announcing 60 MiB and sending a few bytes holds a few bytes, not 60 MiB.
"""

from __future__ import annotations

import enum
import re

from orgproxy.upstream.inflate import CorruptEncoding, Inflater

__all__ = [
    "CorruptEncoding", "Framing", "Head", "HeaderList", "MalformedResponse", "ResponseReader", "ResponseTooLarge",
    "framing", "parse_head",
]

HeaderList = list[tuple[bytes, list[bytes]]]


class ResponseTooLarge(Exception):
    """The upstream's body passed the size cap."""


class MalformedResponse(Exception):
    """The upstream's answer is not HTTP/1.1 the proxy can trust (the reason says where)."""


# The status line and headers of one response, at most: OpenAI's are under 2 KiB.
MAX_HEAD_BYTES = 64 * 1024
# Header lines of one response (or trailer lines of one body), at most: OpenAI's are
# about 20, behind Cloudflare.
MAX_HEADER_LINES = 100
# A chunk-size line (with extensions), or one trailer line, at most.
MAX_CHUNK_LINE = 4096
# Informational answers (100 Continue, 103 Early Hints) before the final one, at most.
MAX_INFORMATIONAL = 8
# Past this many bytes of a chunked body on the wire, chunks must average at least
# MIN_AVERAGE_CHUNK bytes of data (see the module's docstring).
FREE_CHUNKED_BYTES = 64 * 1024
MIN_AVERAGE_CHUNK = 1024
# A body whose length is announced and at least this large goes, once half of it has
# arrived, into one buffer of that length (and a little more: see ResponseReader.body)
# rather than staying in the pieces it came in.
ONE_BUFFER_BYTES = 1 << 20
SPARE_BYTES = 64 * 1024

_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
# A phrase's or a field value's bytes: visible ASCII, space, TAB and obs-text; no other
# control character (RFC 9110, 5.5; RFC 9112, 4).
_TEXT = rb"[\t\x20-\x7e\x80-\xff]"
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-5][0-9][0-9])(?: (" + _TEXT + rb"*))?\r?")
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # a header name (RFC 9110, 5.6.2)
_HEADER_LINE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _TEXT + rb"*?)[ \t]*\r?\n")
_HEADER_LINES = re.compile(rb"(?:" + _TOKEN + rb":" + _TEXT + rb"*\r?\n)*")
_TRAILER_LINE = re.compile(_TOKEN + rb":" + _TEXT + rb"*")
# A chunk's size (as many hex digits as h11 takes), extensions after optional spaces.
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,20})[ \t]*(?:;[^\r\n]*)?")


class Framing(enum.Enum):
    """How a response's body is delimited (RFC 9112, 6.3)."""

    NO_BODY = "no body"  # HEAD, 1xx, 204, 304
    LENGTH = "content-length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until close"


NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = Framing.NO_BODY, Framing.LENGTH, Framing.CHUNKED, Framing.UNTIL_CLOSE


class Head:
    """A response's status line and headers: names in lower case, each name's values in
    the order received, names in the order first seen."""

    __slots__ = ("status", "phrase", "http11", "headers", "by_name")

    def __init__(self, status: int, phrase: bytes, http11: bool, headers: HeaderList,
                 by_name: dict[bytes, list[bytes]]):
        self.status = status
        self.phrase = phrase
        self.http11 = http11
        self.headers = headers
        self.by_name = by_name  # the same lists as ``headers``, by name

    def values(self, name: bytes) -> list[bytes]:
        return self.by_name.get(name, [])

    def tokens(self, name: bytes) -> list[bytes]:
        """A comma-separated header's tokens, lower-cased (Connection, Transfer-Encoding)."""
        values = self.by_name.get(name)
        if values is None:
            return []
        return [token.strip().lower() for value in values for token in value.split(b",") if token.strip()]


def parse_head(block: bytes) -> Head:
    """The status line and headers of ``block`` (up to, not including, the blank line)."""
    status_end = block.find(b"\n")
    status_line = _STATUS_LINE.fullmatch(block if status_end < 0 else block[:status_end])
    if status_line is None:
        raise MalformedResponse("its status line is not HTTP/1.x, or holds a control character")
    headers: HeaderList = []
    by_name: dict[bytes, list[bytes]] = {}
    if status_end >= 0:
        fields = block[status_end + 1:] + b"\n"
        if fields.count(b"\n") > MAX_HEADER_LINES:
            raise MalformedResponse(f"it sends more than {MAX_HEADER_LINES} header lines")
        # Every line a header, checked at once: a token, a colon, a value of text (no
        # control character but TAB); no obsolete line folding, no space before the
        # colon (RFC 9112, 5.1 and 5.2).
        if _HEADER_LINES.fullmatch(fields) is None:
            raise MalformedResponse("a header line is malformed, or holds a control character")
        for name, value in _HEADER_LINE.findall(fields):
            name = name.lower()
            known = by_name.get(name)
            if known is None:
                by_name[name] = known = []
                headers.append((name, known))
            known.append(value)
    return Head(int(status_line.group(2)), status_line.group(3) or b"", status_line.group(1) == b"1", headers,
                by_name)


def framing(method: bytes, head: Head) -> tuple[Framing, int]:
    """How the body of ``head``'s response is delimited (RFC 9112, 6.3), and its length
    when Content-Length gives it."""
    codings = head.values(b"transfer-encoding")
    if codings and (len(codings) != 1 or codings[0].lower() != b"chunked"):
        # Anything else (gzip, chunked twice, an unknown coding) would reach the client
        # in a coding nobody undid.
        raise MalformedResponse("it uses a transfer coding other than chunked")
    if method == b"HEAD" or head.status in (204, 304) or head.status < 200:
        return NO_BODY, 0
    if codings:
        return CHUNKED, 0
    lengths = head.values(b"content-length")
    if lengths:
        values = {value.strip() for length in lengths for value in length.split(b",")}
        if len(values) != 1:
            raise MalformedResponse("it gives conflicting Content-Lengths")
        (value,) = values
        if not value.isdigit() or len(value) > 18:
            raise MalformedResponse("its Content-Length is not a number")
        return LENGTH, int(value)
    return UNTIL_CLOSE, 0


class ResponseReader:
    """One response, read from the bytes of a connection as they come; pure.

    ``feed`` returns True once the response is complete; ``connection_closed`` says
    whether the connection's end completes it (a body read until close). Either raises
    MalformedResponse, ResponseTooLarge or CorruptEncoding when the response cannot be
    taken. The body kept is at most ``limit`` bytes, after gzip is undone.
    """

    def __init__(self, method: bytes, limit: int):
        self.method = method
        self.limit = limit
        self.buffer = b""  # bytes of the head, or of chunk framing, not yet taken
        self.head: Head | None = None
        self.framing = NO_BODY
        self.remaining = 0  # of the body (Content-Length) or of the current chunk
        self.in_trailers = False
        self.trailer_bytes = 0
        self.trailer_lines = 0
        self.informational = 0
        self.encoded_size = 0  # body bytes as they came, before gzip is undone
        self.after_chunk = False  # a chunk's data is read, its CRLF is not yet
        self.chunk_count = 0
        self.chunk_data = 0  # data bytes of the chunks begun so far, as their sizes say
        self.chunk_framing = 0  # bytes of size lines, extensions and line ends
        self.chunks: list[bytes] = []
        self.announced = 0  # a large announced length, to go into one buffer once half is here
        self.whole: memoryview | None = None  # that one buffer
        self.size = 0
        self.inflater: Inflater | None = None
        self.received_any = False
        self.complete = False
        self.leftover = False  # bytes after the end of the response: the connection is not reused

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this response: only
        after an answer whose end was certain (see ``pool.py``)."""
        head = self.head
        if head is None or not head.http11 or self.leftover or self.informational:
            return False
        if self.framing is not LENGTH and self.framing is not CHUNKED:
            return False  # no body (HEAD, 204, 304: a late one may follow), or until close
        if b"close" in head.tokens(b"connection"):
            return False
        # Both framings at once is how responses are smuggled: never trusted twice.
        return not (head.values(b"transfer-encoding") and head.values(b"content-length"))

    def feed(self, data: bytes) -> bool:
        if data:
            self.received_any = True
        if self.complete:
            self.leftover = self.leftover or bool(data)
            return True
        if self.head is None:
            data = self._read_head(data)
            if self.head is None:
                return False
        if self.framing is LENGTH:
            return self._read_length(data)
        if self.framing is CHUNKED:
            return self._read_chunked(data)
        if self.framing is UNTIL_CLOSE:
            self._take(data)
            return False
        return self._done(data)

    def connection_closed(self) -> bool:
        if self.complete:
            return True
        if self.head is not None and self.framing is UNTIL_CLOSE:
            self._finish()
            return True
        return False

    def _read_head(self, data: bytes) -> bytes:
        while True:
            # Searched from where the last search stopped (less the blank line's first
            # bytes): a head sent a byte at a time is not searched afresh each time.
            start = max(len(self.buffer) - 3, 0)
            buffer = self.buffer + data if self.buffer else data
            end = _END_OF_HEAD.search(buffer, start)
            if end is None:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise MalformedResponse(f"its headers pass {MAX_HEAD_BYTES} bytes")
                self.buffer = buffer
                return b""
            if end.start() > MAX_HEAD_BYTES:
                raise MalformedResponse(f"its headers pass {MAX_HEAD_BYTES} bytes")
            head = parse_head(buffer[:end.start()])
            self.buffer, data = b"", buffer[end.end():]
            if head.status < 200:
                if head.status == 101:
                    raise MalformedResponse("it switched protocols, which was never asked")
                self.informational += 1
                if self.informational > MAX_INFORMATIONAL:
                    raise MalformedResponse(f"it sent more than {MAX_INFORMATIONAL} informational answers")
                continue  # 100 Continue, 103 Early Hints: the answer is still to come
            self.head = head
            self.framing, self.remaining = framing(self.method, head)
            if self.framing is LENGTH and self.remaining > self.limit:
                raise ResponseTooLarge()
            if self.framing is not NO_BODY and head.tokens(b"content-encoding") == [b"gzip"]:
                self.inflater = Inflater(self.limit)
            elif self.framing is LENGTH and self.remaining >= ONE_BUFFER_BYTES:
                self.announced = self.remaining
            return data

    def _read_length(self, data: bytes) -> bool:
        if len(data) < self.remaining:
            self.remaining -= len(data)
            self._take(data)
            return False
        self._take(data[:self.remaining] if len(data) > self.remaining else data)
        data, self.remaining = data[self.remaining:], 0
        return self._done(data)

    def _read_chunked(self, data: bytes) -> bool:
        # Read at an offset into ``data``, never by slicing off what was read: a read of
        # tiny chunks would otherwise copy the rest of itself once per chunk.
        if self.buffer:  # an unfinished framing line, or the CR after a chunk's data
            data, self.buffer = self.buffer + data, b""
        at, end = 0, len(data)
        while True:
            if self.remaining:
                stop = min(at + self.remaining, end)
                self._take(data[at:stop])
                self.remaining -= stop - at
                at = stop
                if self.remaining:
                    return False
                self.after_chunk = True
            if self.after_chunk:
                # Exactly CRLF after a chunk's data (as h11 checks it), known from two bytes.
                crlf = data[at:at + 2]
                if crlf != b"\r\n"[:len(crlf)]:
                    raise MalformedResponse("a chunk is longer than its size says")
                if len(crlf) < 2:
                    self.buffer = crlf
                    return False
                at += 2
                self.after_chunk = False
            line_end = data.find(b"\n", at, at + MAX_CHUNK_LINE + 1)
            if line_end < 0:
                if end - at > MAX_CHUNK_LINE:
                    raise MalformedResponse("a chunk's framing line is too long")
                self.buffer = data[at:]
                return False
            crlf_end = line_end if line_end == at or data[line_end - 1] != 13 else line_end - 1  # 13: CR
            if self.in_trailers:
                if crlf_end == at:
                    return self._done(data[line_end + 1:])  # the trailers (dropped) are over
                self._check_trailer(data, at, crlf_end)
            else:
                size = _CHUNK_SIZE.fullmatch(data, at, crlf_end) if crlf_end < line_end else None
                if size is None:
                    raise MalformedResponse("a chunk's size line is malformed, or does not end with CRLF")
                self.remaining = int(size.group(1), 16)
                if self.remaining == 0:
                    self.in_trailers = True
                else:
                    self._count_chunk(line_end + 3 - at)  # with its LF and the CRLF after the data
                    if self.inflater is None and self.size + self.remaining > self.limit:
                        raise ResponseTooLarge()
            at = line_end + 1

    def _count_chunk(self, framing_bytes: int) -> None:
        """Refuse chunks too small for their cost (see the module's docstring)."""
        self.chunk_count += 1
        self.chunk_framing += framing_bytes
        self.chunk_data += self.remaining
        if self.chunk_data + self.chunk_framing > FREE_CHUNKED_BYTES and (
                self.chunk_count * MIN_AVERAGE_CHUNK > self.chunk_data or self.chunk_framing > self.chunk_data):
            raise MalformedResponse(f"its chunks average less than {MIN_AVERAGE_CHUNK} bytes of data, or carry "
                                    "more framing than data")

    def _check_trailer(self, data: bytes, start: int, end: int) -> None:
        self.trailer_bytes += end - start + 2  # with its line end
        self.trailer_lines += 1
        if self.trailer_bytes > MAX_HEAD_BYTES or self.trailer_lines > MAX_HEADER_LINES:
            raise MalformedResponse(f"its trailers pass {MAX_HEAD_BYTES} bytes or {MAX_HEADER_LINES} lines")
        if _TRAILER_LINE.fullmatch(data, start, end) is None:
            raise MalformedResponse("a trailer line is malformed, or holds a control character")

    def _take(self, data: bytes) -> None:
        if not data:
            return
        if self.inflater is not None:
            # The cap holds for the compressed bytes too: a stream that inflates to little
            # or nothing is not read for ever.
            self.encoded_size += len(data)
            if self.encoded_size > self.limit:
                self.chunks.clear()
                raise ResponseTooLarge()
            for piece in self.inflater.inflate(data):
                self._keep(piece)
        else:
            self._keep(data)

    def _keep(self, data: bytes) -> None:
        start = self.size
        self.size += len(data)
        if self.size > self.limit:
            self.chunks.clear()
            self.whole = None
            raise ResponseTooLarge()
        if self.whole is not None:
            self.whole[start:self.size] = data
            return
        self.chunks.append(data)
        if self.announced and 2 * self.size >= self.announced:
            self._into_one_buffer()

    def _into_one_buffer(self) -> None:
        """The pieces so far into one buffer of the announced length: allocated only now
        that half of it has come, so that memory held follows the bytes received."""
        whole = memoryview(bytearray(self.announced + SPARE_BYTES))
        at = 0
        for piece in self.chunks:
            whole[at:at + len(piece)] = piece
            at += len(piece)
        self.chunks = []
        self.whole = whole

    def _done(self, rest: bytes) -> bool:
        self.leftover = bool(rest)
        self._finish()
        return True

    def _finish(self) -> None:
        if self.inflater is not None:
            self.inflater.check_complete()
        self.complete = True

    def body(self) -> bytes:
        """The whole body, once: the reader lets go of its pieces, so that a large body is
        held once, not twice, while it is amended and written."""
        whole, self.whole = self.whole, None
        if whole is not None:
            # Copied out of the buffer, which then goes: a free block a little larger than
            # the body, where the JSON parser's own copy of it (the body and 64 bytes)
            # fits next, rather than on top of the heap. Pieces joined would leave
            # scattered gaps instead, and the heap would grow by a body's size.
            body = bytes(whole[:self.size])
            whole.release()
            return body
        chunks, self.chunks = self.chunks, []
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
