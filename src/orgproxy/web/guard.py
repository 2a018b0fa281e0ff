"""Who may be answered, checked before any resource is looked up and before a byte of a
request's body is read.

Who may connect at all (``--allow-from``) is the site's to check, as each connection is
accepted. The guard checks the client token, twice on one road: the channel asks it once
a request's headers are complete (``refusal``), so a caller without the token never gets a
byte of body buffered; and the guard wraps the root the way ``twisted/web/tap.py`` wraps a
root to add headers, so every request passes through its ``getChildWithDefault`` on the
way to the first segment, and a refused caller never reaches a resource.

The dashboard (``/orgproxy/`` and ``/orgproxy/costs.json``) also takes the client token as
the password of HTTP Basic authentication, whatever the user name: a browser cannot send
``X-Orgproxy-Token``, but asks a person for Basic credentials when a 401 says
``WWW-Authenticate: Basic``, which the dashboard's refusals do. Nothing else takes Basic
credentials (elsewhere ``Authorization`` is the caller's admin key, forwarded).
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_to_bytes

from twisted.web import server
from twisted.web.http_headers import Headers
from twisted.web.resource import IResource, Resource

from orgproxy.errors import ProxyError, bad_client_token
from orgproxy.paths import split_uri
from orgproxy.web.access import TOKEN_HEADER, bearer_token, token_matches
from orgproxy.web.dashboard import ROUTE as DASHBOARD_ROUTE
from orgproxy.web.dashboard import DashboardRefusal
from orgproxy.web.resources import ErrorPage

# /health answers without the token: liveness probes cannot send one, and it tells
# nothing but counts.
OPEN_WITHOUT_TOKEN = frozenset({b"health"})
# /metrics is never forwarded, so its Authorization header is free to carry the client
# token: Prometheus sends it so (a scrape config's ``authorization``) and cannot send
# other headers before version 2.55.
BEARER_TOKEN_ALLOWED = frozenset({b"metrics"})
# How a refused request is counted in metrics, by the first segment it asked for.
_ROUTE_OF_SEGMENT = {b"health": "health", b"metrics": "metrics", b"orgproxy": "unknown_report",
                     b"v1": "proxy"}
_ROUTE_UNDER_ORGPROXY = {b"names": "names", b"": DASHBOARD_ROUTE, b"costs.json": DASHBOARD_ROUTE}
# The paths (first two segments) that take the client token as HTTP Basic's password: the
# dashboard, its JSON, and its address without the slash (which redirects to it).
BASIC_ALLOWED = frozenset({(b"orgproxy", b""), (b"orgproxy", b"costs.json"), (b"orgproxy", None)})


def route_of(segment: bytes, then: bytes | None = None) -> str:
    """The route a request is counted under, by its first segment (and, under
    ``/orgproxy/``, the one after it)."""
    if segment == b"orgproxy" and then in _ROUTE_UNDER_ORGPROXY:
        return _ROUTE_UNDER_ORGPROXY[then]
    return _ROUTE_OF_SEGMENT.get(segment, "other")


def first_segments(target: bytes) -> tuple[bytes, bytes | None]:
    """The first two segments of a request target's path (None for a second where there is
    none), decoded as Twisted's traversal decodes them."""
    segments = split_uri(target)[0][1:].split(b"/", 2)
    return unquote_to_bytes(segments[0]), unquote_to_bytes(segments[1]) if len(segments) > 1 else None


def route_of_target(target: bytes) -> str:
    """The route a request for ``target`` is counted under (see route_of)."""
    return route_of(*first_segments(target))


def basic_password(authorization: bytes | None) -> bytes | None:
    """The password of an ``Authorization: Basic <base64 of user:password>`` header, if
    that is one."""
    scheme, _, credentials = (authorization or b"").partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return password if colon else None


class AccessGuard(Resource):
    def __init__(self, root: IResource, client_token: bytes | None):
        super().__init__()
        self.root = root
        self.client_token = client_token

    def getChildWithDefault(self, path: bytes, request: server.Request) -> IResource:
        then = request.postpath[0] if request.postpath else None
        error = self.refusal(request.requestHeaders, path, then)
        if error is not None:
            if (path, then) in BASIC_ALLOWED:
                return DashboardRefusal(error)
            return ErrorPage(error, route_of(path, then))
        return self.root.getChildWithDefault(path, request)

    def render(self, request: server.Request) -> bytes | int:  # type: ignore[override]
        # Not reached through a Site (a request always has a first segment), but a
        # resource must answer render.
        return self.getChildWithDefault(b"", request).render(request)

    def refusal(self, headers: Headers, segment: bytes, then: bytes | None = None) -> ProxyError | None:
        """Why a request with these headers, for a path whose first segments are
        ``segment`` and ``then``, may not be answered at all, if it may not."""
        if self.client_token is None or segment in OPEN_WITHOUT_TOKEN:
            return None
        given = headers.getRawHeaders(TOKEN_HEADER, [None])[-1]
        if given is None and segment in BEARER_TOKEN_ALLOWED:
            given = bearer_token(headers.getRawHeaders(b"authorization", [None])[-1])
        if given is None and (segment, then) in BASIC_ALLOWED:
            given = basic_password(headers.getRawHeaders(b"authorization", [None])[-1])
        if not token_matches(self.client_token, given):
            return bad_client_token()
        return None
