"""orgproxy's response parser beside h11's, on a corpus of upstream answers: every framing
case of RFC 9112, sections 6 and 7, and the malformed ones, each fed whole, a byte at a
time, and split in two at every byte, then the connection closed. However its bytes are
split, orgproxy must reach h11's verdict (h11's taken whole and a byte at a time): the
same status, phrase, headers and body, ended before the close or by it; or both refuse.
The deliberate differences are listed in ``DIFFERENCES`` with their reasons. And a
connection orgproxy would reuse, h11 would reuse too.

Headers are compared without Content-Length and Transfer-Encoding, which h11 normalises
(one length for ``2, 2``, the coding lower-cased) and the proxy never passes on: the body
compared says whether both framed it alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import h11
import pytest

from orgproxy.upstream.failures import MalformedResponse, ResponseTooLarge
from orgproxy.upstream.parse import MAX_HEAD_BYTES, MAX_HEADER_LINES, ResponseReader

LIMIT = 1 << 20
FRAMING_HEADERS = (b"content-length", b"transfer-encoding")
OK = b"HTTP/1.1 200 OK\r\n"
CHUNKED = OK + b"Transfer-Encoding: chunked\r\n\r\n"


@dataclass(frozen=True)
class Verdict:
    refused: bool
    status: int = 0
    phrase: bytes = b""
    headers: tuple[tuple[bytes, tuple[bytes, ...]], ...] = ()
    body: bytes = b""
    ended_before_close: bool = False


REFUSED = Verdict(refused=True)


def grouped(pairs: list[tuple[bytes, bytes]]) -> tuple[tuple[bytes, tuple[bytes, ...]], ...]:
    """(name, value) pairs as each name's values, names in the order first seen."""
    by_name: dict[bytes, list[bytes]] = {}
    for name, value in pairs:
        if name not in FRAMING_HEADERS:
            by_name.setdefault(name, []).append(value)
    return tuple((name, tuple(values)) for name, values in by_name.items())


def orgproxys(method: bytes, pieces: list[bytes]) -> tuple[Verdict, bool]:
    """orgproxy's verdict, and whether it would reuse the connection."""
    reader = ResponseReader(method, LIMIT)
    try:
        ended = False
        for piece in pieces:
            if reader.feed(piece):
                ended = True
                break
        if not ended and not reader.connection_closed():
            return REFUSED, False  # cut short by the close: the exchange fails (502)
    except (MalformedResponse, ResponseTooLarge):
        return REFUSED, False
    head = reader.head
    assert head is not None
    pairs = [(name, value) for name, values in head.headers for value in values]
    return Verdict(False, head.status, head.phrase, grouped(pairs), reader.body(), ended), reader.keep_alive


def h11s(method: bytes, pieces: list[bytes]) -> tuple[Verdict, bool]:
    """h11's verdict as a client that sent ``method``, and whether it would reuse the connection."""
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
    connection.send(h11.Request(method=method, target="/", headers=[("Host", "upstream.test")]))
    connection.send(h11.EndOfMessage())
    response: h11.Response | None = None
    body: list[bytes] = []
    try:
        for piece in [*pieces, b""]:  # b"": the connection closed
            connection.receive_data(piece)
            while (event := connection.next_event()) not in (h11.NEED_DATA, h11.PAUSED):
                if isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    body.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    assert response is not None
                    reusable = connection.our_state is h11.DONE and connection.their_state is h11.DONE
                    return Verdict(False, response.status_code, bytes(response.reason), grouped(list(response.headers)),
                                   b"".join(body), piece != b""), reusable
                elif isinstance(event, h11.ConnectionClosed):
                    return REFUSED, False
    except h11.RemoteProtocolError:
        return REFUSED, False
    raise AssertionError("h11 neither ended the answer nor refused it")


# name: (method, the upstream's bytes)
CORPUS: dict[str, tuple[bytes, bytes]] = {
    # Content-Length (RFC 9112, 6.3 items 5-6)
    "content-length": (b"GET", OK + b"Content-Length: 5\r\n\r\nhello"),
    "content-length 0": (b"GET", OK + b"Content-Length: 0\r\n\r\n"),
    "content-length repeated, identical": (b"GET", OK + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
    "content-length list, identical": (b"GET", OK + b"Content-Length: 5, 5\r\n\r\nhello"),
    "content-length with spaces": (b"GET", OK + b"Content-Length:   5  \r\n\r\nhello"),
    "content-length repeated, conflicting": (b"GET", OK + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    "content-length list, conflicting": (b"GET", OK + b"Content-Length: 5, 6\r\n\r\nhello!"),
    "content-length not a number": (b"GET", OK + b"Content-Length: five\r\n\r\nhello"),
    "content-length negative": (b"GET", OK + b"Content-Length: -5\r\n\r\nhello"),
    "content-length with a sign": (b"GET", OK + b"Content-Length: +5\r\n\r\nhello"),
    "content-length in hex": (b"GET", OK + b"Content-Length: 0x5\r\n\r\nhello"),
    "content-length empty": (b"GET", OK + b"Content-Length:\r\n\r\nhello"),
    "content-length two numbers with a space": (b"GET", OK + b"Content-Length: 5 5\r\n\r\nhello"),
    "content-length huge": (b"GET", OK + b"Content-Length: 99999999999999999999\r\n\r\nhello"),
    "content-length of 21 digits": (b"GET", OK + b"Content-Length: 100000000000000000000\r\n\r\nhello"),
    "body cut short by the close": (b"GET", OK + b"Content-Length: 10\r\n\r\nhello"),
    "bytes after the body": (b"GET", OK + b"Content-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\n\r\n"),
    # chunked (RFC 9112, 7.1)
    "chunked": (b"GET", CHUNKED + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
    "chunked, upper-case hex and leading zeros": (b"GET", CHUNKED + b"000A\r\n0123456789\r\n00\r\n\r\n"),
    "chunked, a size of 20 hex digits": (b"GET", CHUNKED + b"00000000000000000005\r\nhello\r\n0\r\n\r\n"),
    "chunked, a size of 21 hex digits": (b"GET", CHUNKED + b"000000000000000000005\r\nhello\r\n0\r\n\r\n"),
    "chunked, a huge size": (b"GET", CHUNKED + b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    "chunked, extensions": (b"GET", CHUNKED + b"5;name=value;flag\r\nhello\r\n0;last\r\n\r\n"),
    "chunked, a quoted extension": (b"GET", CHUNKED + b'5;name="a;b\\"c"\r\nhello\r\n0\r\n\r\n'),
    "chunked, a bare semicolon": (b"GET", CHUNKED + b"5;\r\nhello\r\n0\r\n\r\n"),
    "chunked, spaces after the size": (b"GET", CHUNKED + b"5  \r\nhello\r\n0\r\n\r\n"),
    "chunked, a space before an extension": (b"GET", CHUNKED + b"5 ;name=value\r\nhello\r\n0\r\n\r\n"),
    "chunked, a lone CR in an extension": (b"GET", CHUNKED + b"5;a\rb\r\nhello\r\n0\r\n\r\n"),
    "chunked, trailers": (b"GET", CHUNKED + b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: d\r\n\r\n"),
    "chunked, trailers ending in bare LF": (b"GET", CHUNKED + b"5\r\nhello\r\n0\r\nX-Checksum: abc\n\n"),
    "chunked, a folded trailer": (b"GET", CHUNKED + b"5\r\nhello\r\n0\r\nX-Checksum: a\r\n b\r\n\r\n"),
    "chunked, a trailer without a colon": (b"GET", CHUNKED + b"5\r\nhello\r\n0\r\nno colon\r\n\r\n"),
    "chunked, a size that is not hex": (b"GET", CHUNKED + b"zz\r\nhello\r\n0\r\n\r\n"),
    "chunked, an empty size line": (b"GET", CHUNKED + b"\r\nhello\r\n0\r\n\r\n"),
    "chunked, a negative size": (b"GET", CHUNKED + b"-5\r\nhello\r\n0\r\n\r\n"),
    "chunked, a size in 0x": (b"GET", CHUNKED + b"0x5\r\nhello\r\n0\r\n\r\n"),
    "chunked, data longer than its size": (b"GET", CHUNKED + b"3\r\nhello\r\n0\r\n\r\n"),
    "chunked, no CRLF after the data": (b"GET", CHUNKED + b"5\r\nhello0\r\n\r\n"),
    "chunked, bare LF after a size": (b"GET", CHUNKED + b"5\nhello\r\n0\r\n\r\n"),
    "chunked, bare LF after the data": (b"GET", CHUNKED + b"5\r\nhello\n0\r\n\r\n"),
    "chunked, bare LF after the last size": (b"GET", CHUNKED + b"5\r\nhello\r\n0\n\r\n"),
    "chunked, cut short before the last chunk": (b"GET", CHUNKED + b"5\r\nhello\r\n"),
    "chunked, cut short in the trailers": (b"GET", CHUNKED + b"5\r\nhello\r\n0\r\n"),
    "chunked, in a HTTP/1.0 answer": (b"GET", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"),
    # Transfer-Encoding (RFC 9112, 6.1 and 6.3 items 3-4)
    "chunked in any case": (b"GET", OK + b"Transfer-Encoding: ChUnKeD\r\n\r\n2\r\nhi\r\n0\r\n\r\n"),
    "transfer-encoding and content-length": (b"GET", OK + b"Transfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n"
                                             b"2\r\nhi\r\n0\r\n\r\n"),
    "gzip then chunked": (b"GET", OK + b"Transfer-Encoding: gzip, chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"),
    "chunked twice": (b"GET", OK + b"Transfer-Encoding: chunked, chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"),
    "two transfer-encoding headers": (b"GET", OK + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      b"2\r\nhi\r\n0\r\n\r\n"),
    "chunked with a trailing comma": (b"GET", OK + b"Transfer-Encoding: chunked,\r\n\r\n2\r\nhi\r\n0\r\n\r\n"),
    "identity": (b"GET", OK + b"Transfer-Encoding: identity\r\n\r\nhi"),
    "gzip alone": (b"GET", OK + b"Transfer-Encoding: gzip\r\n\r\nhi"),
    # read until the close (RFC 9112, 6.3 item 8)
    "until close": (b"GET", OK + b"Content-Type: text/plain\r\n\r\nhello, until the end"),
    "until close, HTTP/1.0": (b"GET", b"HTTP/1.0 200 OK\r\n\r\nhello"),
    "until close, empty": (b"GET", OK + b"\r\n"),
    # answers without a body (RFC 9112, 6.3 items 1-2)
    "HEAD": (b"HEAD", OK + b"Content-Length: 42\r\n\r\n"),
    "HEAD, chunked": (b"HEAD", OK + b"Transfer-Encoding: chunked\r\n\r\n"),
    "HEAD, a body anyway": (b"HEAD", OK + b"Content-Length: 5\r\n\r\nhello"),
    "HEAD, a list for a length": (b"HEAD", OK + b"Content-Length: 12, 99\r\n\r\n"),
    "204": (b"GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
    "204, a length": (b"GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"),
    "304": (b"GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
    "100 then 200": (b"GET", b"HTTP/1.1 100 Continue\r\n\r\n" + OK + b"Content-Length: 2\r\n\r\nhi"),
    "100, 103 then 200": (b"GET", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                          + OK + b"Content-Length: 2\r\n\r\nhi"),
    "100 and the close": (b"GET", b"HTTP/1.1 100 Continue\r\n\r\n"),
    "101 unasked": (b"GET", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"),
    # status lines (RFC 9112, 4)
    "no phrase": (b"GET", b"HTTP/1.1 429\r\nContent-Length: 0\r\n\r\n"),
    "an empty phrase": (b"GET", b"HTTP/1.1 429 \r\nContent-Length: 0\r\n\r\n"),
    "a phrase with TAB and obs-text": (b"GET", b"HTTP/1.1 200 D\xc3\xa9j\xc3\xa0\tvu\r\nContent-Length: 0\r\n\r\n"),
    "a phrase with NUL": (b"GET", b"HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n"),
    "a phrase with VT": (b"GET", b"HTTP/1.1 200 O\x0bK\r\nContent-Length: 0\r\n\r\n"),
    "a phrase with ESC": (b"GET", b"HTTP/1.1 200 O\x1b[31mK\r\nContent-Length: 0\r\n\r\n"),
    "a phrase with DEL": (b"GET", b"HTTP/1.1 200 O\x7fK\r\nContent-Length: 0\r\n\r\n"),
    "HTTP/1.2": (b"GET", b"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n"),
    "HTTP/2.0": (b"GET", b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
    "HTTP/2": (b"GET", b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n"),
    "lower-case http": (b"GET", b"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    "status 600": (b"GET", b"HTTP/1.1 600 Beyond\r\nContent-Length: 0\r\n\r\n"),
    "status 099": (b"GET", b"HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n"),
    "status of 4 digits": (b"GET", b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"),
    "two spaces before the status": (b"GET", b"HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n"),
    "a blank line before the status line": (b"GET", b"\r\n" + OK + b"Content-Length: 0\r\n\r\n"),
    "not HTTP": (b"GET", b"ICY 200 OK\r\n\r\n"),
    # header lines (RFC 9112, 5)
    "bare LF line ends": (b"GET", b"HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 2\n\nhi"),
    "CRLF and LF mixed": (b"GET", b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\nhi"),
    "repeated headers in order": (b"GET", OK + b"X-A: 1\r\nX-B: 2\r\nx-a:  3 \r\nX-C:\r\nContent-Length: 0\r\n\r\n"),
    "a value with TAB and obs-text": (b"GET", OK + b"X-A: a\tb \xff\r\nContent-Length: 0\r\n\r\n"),
    "a folded header": (b"GET", OK + b"X-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
    "a space before the colon": (b"GET", OK + b"X-A : 1\r\nContent-Length: 0\r\n\r\n"),
    "no colon": (b"GET", OK + b"X-A 1\r\nContent-Length: 0\r\n\r\n"),
    "an empty name": (b"GET", OK + b": 1\r\nContent-Length: 0\r\n\r\n"),
    "a name that is not a token": (b"GET", OK + b"X@A: 1\r\nContent-Length: 0\r\n\r\n"),
    "a value with NUL": (b"GET", OK + b"X-A: a\x00b\r\nContent-Length: 0\r\n\r\n"),
    "a value with a bare CR": (b"GET", OK + b"X-A: a\rb\r\nContent-Length: 0\r\n\r\n"),
    "a value with VT": (b"GET", OK + b"X-A: a\x0bb\r\nContent-Length: 0\r\n\r\n"),
    "a value with FF": (b"GET", OK + b"X-A: a\x0cb\r\nContent-Length: 0\r\n\r\n"),
    "a value with ESC": (b"GET", OK + b"X-A: a\x1bb\r\nContent-Length: 0\r\n\r\n"),
    "a value with DEL": (b"GET", OK + b"X-A: a\x7fb\r\nContent-Length: 0\r\n\r\n"),
    "a value with SOH": (b"GET", OK + b"X-A: a\x01b\r\nContent-Length: 0\r\n\r\n"),
    "as many header lines as taken": (b"GET", OK + b"A:\r\n" * MAX_HEADER_LINES + b"\r\n"),
    "one header line too many": (b"GET", OK + b"A:\r\n" * (MAX_HEADER_LINES + 1) + b"\r\n"),
}

# name: (h11's verdict is a refusal, orgproxy's is; why they differ)
DIFFERENCES: dict[str, tuple[bool, bool, str]] = {
    "chunked, a space before an extension": (
        True, False, "RFC 9112, 7.1.1 lets BWS precede a chunk extension's ';' (RFC 9110, 5.6.3: recipients "
                     "must accept it); h11 does not"),
    "chunked, a lone CR in an extension": (
        False, True, "a CR is in no extension's grammar, and some parsers end a line at it: refused, as any "
                     "framing two parsers might read apart"),
    "chunked, a folded trailer": (
        False, True, "obsolete line folding: refused as in the head (RFC 9112, 5.2 lets a proxy answer 502)"),
    "HEAD, a list for a length": (
        True, False, "a HEAD answer's length frames nothing: taken, and dropped unless it is one number "
                     "(client.announced_length), rather than refusing the answer"),
    "a phrase with ESC": (False, True, "control characters are refused in phrases and values (parse.py): h11 "
                                       "takes all but NUL and whitespace"),
    "a phrase with DEL": (False, True, "as ESC"),
    "a value with ESC": (False, True, "as ESC in the phrase"),
    "a value with DEL": (False, True, "as ESC in the phrase"),
    "a value with SOH": (False, True, "as ESC in the phrase"),
    "HTTP/1.2": (False, True, "only HTTP/1.0 and 1.1 are spoken here; h11 takes any HTTP/d.d"),
    "HTTP/2.0": (False, True, "as HTTP/1.2"),
    "status 600": (False, True, "RFC 9110, 15: a status is 100 to 599; h11 takes up to 999"),
    "a folded header": (False, True, "obsolete line folding: RFC 9112, 5.2 lets a proxy answer 502 rather than "
                                     "unfold it; h11 unfolds it"),
    "one header line too many": (False, True, f"at most {MAX_HEADER_LINES} header lines (parse.py); h11 has no "
                                              "such cap"),
}


def splits(wire: bytes) -> list[list[bytes]]:
    """``wire`` a byte at a time, and in two pieces at every byte (the first: whole)."""
    return [*([wire[:i], wire[i:]] for i in range(len(wire))), [wire[i:i + 1] for i in range(len(wire))]]


@pytest.mark.parametrize("name", list(CORPUS))
def test_the_parser_reaches_h11s_verdict(name: str) -> None:
    method, wire = CORPUS[name]
    # h11's verdict, whole and a byte at a time (the same: all comes before the close);
    # orgproxy's, however the bytes are split.
    theirs, theirs_reused = h11s(method, [wire])
    assert h11s(method, [wire[i:i + 1] for i in range(len(wire))]) == (theirs, theirs_reused)
    for pieces in splits(wire):
        ours, ours_reused = orgproxys(method, pieces)
        if name in DIFFERENCES:
            h11_refuses, orgproxy_refuses, _ = DIFFERENCES[name]
            assert (theirs.refused, ours.refused) == (h11_refuses, orgproxy_refuses), pieces
        else:
            assert ours == theirs, pieces
        if not theirs.refused:
            assert theirs_reused or not ours_reused, pieces  # never reused where h11 would not


def test_every_difference_is_in_the_corpus() -> None:
    assert set(DIFFERENCES) <= set(CORPUS)
