"""Who may call at all, checked before any resource is looked up.

The guard wraps the root the way ``twisted/web/tap.py`` wraps a root to add headers: every
request passes through its ``getChildWithDefault`` on the way to the first segment, so a
refused caller never reaches a resource.
"""

from __future__ import annotations

from twisted.web import server
from twisted.web.resource import IResource, Resource

from orgproxy.errors import ProxyError, bad_client_token, forbidden_source
from orgproxy.web.access import TOKEN_HEADER, AllowList, bearer_token, token_matches
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
_ROUTE_UNDER_ORGPROXY = {b"names": "names"}


class AccessGuard(Resource):
    def __init__(self, root: IResource, allow: AllowList | None, client_token: bytes | None):
        super().__init__()
        self.root = root
        self.allow = allow
        self.client_token = client_token

    def getChildWithDefault(self, path: bytes, request: server.Request) -> IResource:
        error = self.refusal(request, path)
        if error is not None:
            under = request.postpath[0] if path == b"orgproxy" and request.postpath else None
            return ErrorPage(error, _ROUTE_UNDER_ORGPROXY.get(under, _ROUTE_OF_SEGMENT.get(path, "other")))
        return self.root.getChildWithDefault(path, request)

    def render(self, request: server.Request) -> bytes | int:  # type: ignore[override]
        # Not reached through a Site (a request always has a first segment), but a
        # resource must answer render.
        return self.getChildWithDefault(b"", request).render(request)

    def refusal(self, request: server.Request, first_segment: bytes) -> ProxyError | None:
        """Why this caller may not be answered at all, if it may not."""
        if self.allow is not None:
            host = getattr(request.getClientAddress(), "host", None)  # None for a UNIX socket
            if host is not None and not self.allow.allows(host):
                return forbidden_source()
        if self.client_token is not None and first_segment not in OPEN_WITHOUT_TOKEN:
            given = request.requestHeaders.getRawHeaders(TOKEN_HEADER, [None])[-1]
            if given is None and first_segment in BEARER_TOKEN_ALLOWED:
                given = bearer_token(request.requestHeaders.getRawHeaders(b"authorization", [None])[-1])
            if not token_matches(self.client_token, given):
                return bad_client_token()
        return None
