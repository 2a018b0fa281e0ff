"""Which request paths may be forwarded: those of the Admin APIs, and nothing else.

That is everything under a provider's prefix (/v1/organization/ for OpenAI,
/v1/organizations/ for Anthropic), and the few OpenAI Admin API paths outside its prefix
that the official SDK's admin namespace calls (``ADMIN_PATHS_OUTSIDE_ORGANIZATION``).

Pure. The check is on the raw path as the client sent it, and a path that passes is
forwarded exactly as sent, so what was checked is what the upstream sees.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

PREFIX = b"/v1/organization/"

# The Admin API's paths outside /v1/organization/, as templates (None: one id segment).
# Taken from OpenAI's OpenAPI spec (the "Roles", "Project user role assignments" and
# "Project group role assignments" operations), and exactly what the official SDK's
# ``client.admin.organization.projects.roles``, ``.projects.users.roles`` and
# ``.projects.groups.roles`` call; every other path outside /v1/organization/
# (/v1/chat/completions, /v1/files, ...) stays refused.
ADMIN_PATHS_OUTSIDE_ORGANIZATION: tuple[tuple[bytes | None, ...], ...] = (
    (b"v1", b"projects", None, b"roles"),
    (b"v1", b"projects", None, b"roles", None),
    (b"v1", b"projects", None, b"users", None, b"roles"),
    (b"v1", b"projects", None, b"users", None, b"roles", None),
    (b"v1", b"projects", None, b"groups", None, b"roles"),
    (b"v1", b"projects", None, b"groups", None, b"roles", None),
)

# One path segment: unreserved characters, sub-delimiters, ':' '@' and percent escapes
# (RFC 3986, 3.3). Anything else (a backslash, a space, a control character, a bare '%')
# is refused rather than guessed at.
_SEGMENT = re.compile(rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})+")
# Percent escapes that would change the path's shape once an upstream decodes them:
# '/', '\', '%' (double encoding) and NUL.
_SHAPE_CHANGING_ESCAPE = re.compile(rb"%(?:2[Ff]|5[Cc]|25|00)")
# A path of segments of letters, digits, '-' and '_' alone: every segment plain (no dot,
# no escape, no parameter, none empty), as nearly every real request's is. Checked with
# one match, it skips the segment-by-segment check below, which it cannot disagree with.
_PLAIN_PATH = re.compile(rb"(?:/[A-Za-z0-9_\-]+)+")


def split_uri(uri: bytes) -> tuple[bytes, bytes | None]:
    """(path, query) of a request target; query is None when there is no '?'."""
    path, question, query = uri.partition(b"?")
    return path, (query if question else None)


def is_forwardable(path: bytes, prefix: bytes = PREFIX,
                   outside: tuple[tuple[bytes | None, ...], ...] = ADMIN_PATHS_OUTSIDE_ORGANIZATION) -> bool:
    """Whether ``path`` names a path under ``prefix``, or one of the templates ``outside``
    it, whatever way it is decoded.

    Refused: anything outside ``prefix`` but the templates ``outside`` (for OpenAI, the
    few Admin API paths above; Anthropic has none), empty segments (``//``, a trailing
    ``/``), ``.`` and ``..`` segments in any spelling (``%2e%2e``, ``..;x=1``, ``..%3b``),
    encoded slashes and backslashes, double encoding, and characters a path may not hold.
    """
    if _PLAIN_PATH.fullmatch(path) is None:
        if not path.startswith(b"/") or not all(_is_plain(segment) for segment in path[1:].split(b"/")):
            return False
    if path.startswith(prefix):
        return True
    segments = path[1:].split(b"/")
    return any(_matches(template, segments) for template in outside)


def _is_plain(segment: bytes) -> bool:
    """A segment that names one thing, and still does once decoded or stripped."""
    return (bool(_SEGMENT.fullmatch(segment)) and not _SHAPE_CHANGING_ESCAPE.search(segment)
            and not _is_dot_or_empty(segment))


def _is_dot_or_empty(segment: bytes) -> bool:
    """Whether the segment is ``.``, ``..`` or empty to a server that drops ``;`` parameters
    (RFC 2396's path parameters: Tomcat, Jetty and Spring do) and percent-decodes, as many
    times over as decoding changes it: ``..;``, ``%2e%2e;x=1``, ``..%3b``, ``;x``."""
    while True:
        bare = segment.split(b";", 1)[0]
        decoded = unquote_to_bytes(bare)
        if decoded == bare:
            return bare in (b"", b".", b"..")
        segment = decoded


def _matches(template: tuple[bytes | None, ...], segments: list[bytes]) -> bool:
    return len(template) == len(segments) and all(
        literal is None or literal == segment for literal, segment in zip(template, segments))
