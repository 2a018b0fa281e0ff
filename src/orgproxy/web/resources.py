"""The proxy's own small resources: directories whose missing children are 404s (in the
shape of the provider whose paths they are among), an error page, ``/health``,
``/metrics`` and ``/orgproxy/unknown``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qs

import orjson
from twisted.web import server
from twisted.web.resource import IResource, Resource

from orgproxy.errors import ProxyError, not_found, unknown_format
from orgproxy.names.snapshot import CurrentNames
from orgproxy.names.unknown import UnknownIds
from orgproxy.ops import metrics
from orgproxy.paths import split_uri
from orgproxy.text import escaped
from orgproxy.times import iso
from orgproxy.web.respond import refuse, refuse_method


def json_body(value: Any) -> bytes:
    """``value`` as JSON. An id seen in a body may hold a lone surrogate (valid JSON,
    ``"key_\\ud800"``) that has no UTF-8 form: such text is written as its ``\\u``
    escape, which reads back as the very same id."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")


class ErrorPage(Resource):
    """Answers every request under it with one of the proxy's own errors."""

    isLeaf = True

    def __init__(self, error: ProxyError, route: str = "other"):
        super().__init__()
        self.error = error
        self.route = route

    def render(self, request: server.Request) -> int:  # type: ignore[override]
        request.route = self.route  # type: ignore[attr-defined]
        refuse(request, self.error)
        return server.NOT_DONE_YET


class Directory(Resource):
    """A path segment with named children; anything else under it, and the directory
    itself, is a JSON 404 (Twisted's own is an HTML page)."""

    def getChild(self, path: bytes, request: server.Request) -> IResource:
        return ErrorPage(not_found())

    def render(self, request: server.Request) -> int:  # type: ignore[override]
        return ErrorPage(not_found()).render(request)


class OwnPage(Resource):
    """One of the proxy's own answers: GET and HEAD, at exactly its path."""

    route = "other"
    allowedMethods = (b"GET", b"HEAD")

    def getChild(self, path: bytes, request: server.Request) -> IResource:
        return ErrorPage(not_found())

    def render(self, request: server.Request) -> bytes | int:  # type: ignore[override]
        request.route = self.route  # type: ignore[attr-defined]
        if request.method not in self.allowedMethods:
            refuse_method(request, self.allowedMethods)
            return server.NOT_DONE_YET
        return self.answer(request)

    def answer(self, request: server.Request) -> bytes | int:
        """The body, or NOT_DONE_YET when the request was answered otherwise (refused)."""
        raise NotImplementedError


class DiscoveryStatus(Protocol):
    def status(self) -> dict[str, Any]: ...


class Health(OwnPage):
    """Counts and states, never names or keys: for probes and people."""

    route = "health"

    def __init__(self, current: CurrentNames, discovery: DiscoveryStatus | None,
                 providers: Mapping[str, tuple[str, DiscoveryStatus | None]] | None = None):
        super().__init__()
        self.current = current
        self.discovery = discovery  # OpenAI's, shown as "discovery" as it always was
        # provider name -> (its upstream, its discovery or None)
        self.providers = providers or {}

    def answer(self, request: server.Request) -> bytes:
        current = self.current
        names = current.names
        request.setHeader(b"content-type", b"application/json")
        aliases = None
        if current.source is not None:
            aliases = {
                "path": current.source,
                "names": names.by_source.get("aliases", 0),  # the file's own, not discovery's or history's
                "loaded_at": iso(current.loaded_at),
                "checked_at": iso(current.checked_at, precise=True),
                "error": current.error,  # the current file's problem; None when it loaded
            }
        return json_body({
            "status": "ok",
            "pid": os.getpid(),
            "names_loaded": names.count(),
            "names_by_field": names.counts(),
            "names_by_source": dict(names.by_source),
            "aliases": aliases,
            "discovery": _status(self.discovery),
            "providers": {name: {"upstream": upstream, "discovery": _status(discovery)}
                          for name, (upstream, discovery) in self.providers.items()},
        })


def _status(discovery: DiscoveryStatus | None) -> dict[str, Any]:
    return discovery.status() if discovery is not None else {"enabled": False}


class MetricsPage(OwnPage):
    """Prometheus text format."""

    route = "metrics"

    def answer(self, request: server.Request) -> bytes:
        content_type, body = metrics.render()
        request.setHeader(b"content-type", content_type)
        return body


# What /orgproxy/unknown answers in (?format=).
REPORT_FORMATS = ("json", "toml")


class UnknownReport(OwnPage):
    """The ids seen that nobody could name: JSON, or ``?format=toml`` alias-file tables.

    ``unknown()`` gives the ids to report: this process's, or with --workers every
    process's, merged (``names/unknown_shared.py``)."""

    route = "unknown_report"

    def __init__(self, unknown: Callable[[], UnknownIds], current: CurrentNames):
        super().__init__()
        self.unknown = unknown
        self.current = current

    def answer(self, request: server.Request) -> bytes | int:
        query = split_uri(request.uri)[1] or b""
        wanted = parse_qs(query.decode("latin-1")).get("format", ["json"])[-1]
        if wanted not in REPORT_FORMATS:
            refuse(request, unknown_format(escaped(wanted[:100]), REPORT_FORMATS))
            return server.NOT_DONE_YET
        names = self.current.names
        unknown = self.unknown()
        if wanted == "toml":
            request.setHeader(b"content-type", b"application/toml; charset=utf-8")
            source = self.current.source
            return unknown.toml_skeleton(names, source, source is not None and os.path.isdir(source)
                                         ).encode("utf-8")
        request.setHeader(b"content-type", b"application/json")
        return json_body(unknown.report(names))
