"""Which request paths may be forwarded: only those that stay under a provider's prefix
(/v1/organization/ for OpenAI, /v1/organizations/ for Anthropic).

Pure. The check is on the raw path as the client sent it, and a path that passes is
forwarded exactly as sent, so what was checked is what the upstream sees.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

PREFIX = b"/v1/organization/"

# One path segment: unreserved characters, sub-delimiters, ':' '@' and percent escapes
# (RFC 3986, 3.3). Anything else (a backslash, a space, a control character, a bare '%')
# is refused rather than guessed at.
_SEGMENT = re.compile(rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})+")
# Percent escapes that would change the path's shape once an upstream decodes them:
# '/', '\', '%' (double encoding) and NUL.
_SHAPE_CHANGING_ESCAPE = re.compile(rb"%(?:2[Ff]|5[Cc]|25|00)")


def split_uri(uri: bytes) -> tuple[bytes, bytes | None]:
    """(path, query) of a request target; query is None when there is no '?'."""
    path, question, query = uri.partition(b"?")
    return path, (query if question else None)


def is_forwardable(path: bytes, prefix: bytes = PREFIX) -> bool:
    """Whether ``path`` names something under ``prefix`` whatever way it is decoded.

    Refused: anything outside the prefix, empty segments (``//``, a trailing ``/``),
    ``.`` and ``..`` segments in any spelling (``%2e%2e``), encoded slashes and
    backslashes, double encoding, and characters a path may not hold.
    """
    if not path.startswith(prefix):
        return False
    for segment in path[len(prefix):].split(b"/"):
        if not _SEGMENT.fullmatch(segment) or _SHAPE_CHANGING_ESCAPE.search(segment):
            return False
        if unquote_to_bytes(segment) in (b".", b".."):
            return False
    return True
