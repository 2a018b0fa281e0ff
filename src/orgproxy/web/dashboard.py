"""``GET /orgproxy/`` (the dashboard's page) and ``GET /orgproxy/costs.json`` (the same data,
for scripts): drawn at each view from what the daemon keeps (the cost store, the names in
force, the budgets, the ids nobody named), never by asking a provider.

They answer whom ``/metrics`` answers (``--allow-from``, and the client token where one is
set), and take the token as the password of HTTP Basic authentication too, since a browser
cannot send ``X-Orgproxy-Token`` (see ``guard.py``). Every answer of theirs, a refusal
included, says the headers of ``dashboard_assets.SECURITY_HEADERS``.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.web import server

from orgproxy.costs.budget_file import BudgetsReloader
from orgproxy.costs.budgets import NO_BUDGETS
from orgproxy.costs.overview import Overview, overview
from orgproxy.costs.store import CostStore
from orgproxy.names.current import CurrentNames
from orgproxy.names.unknown import UnknownIds
from orgproxy.web.dashboard_assets import SECURITY_HEADERS
from orgproxy.web.dashboard_page import render_page
from orgproxy.errors import ProxyError
from orgproxy.web.resources import Directory, ErrorPage, OwnPage, json_body

ROUTE = "dashboard"


class DashboardSources:
    """What the dashboard reads, at each view: ``store`` None where the cost series are off
    or no provider has an admin key; ``budgets`` None without ``--budgets``."""

    def __init__(self, clock: IReactorTime, current: CurrentNames, unknown: Callable[[], UnknownIds],
                 store: CostStore | None, budgets: BudgetsReloader | None, cost_interval: float,
                 client_token: bool = False):
        self.clock = clock
        self.current = current
        self.unknown = unknown
        self.store = store
        self.budgets = budgets
        self.cost_interval = cost_interval
        self.client_token = client_token

    def overview(self) -> Overview:
        budgets = self.budgets
        return overview(self.store.current() if self.store is not None else None, self.current.names,
                        budgets.budgets if budgets is not None else NO_BUDGETS, self.unknown(), self.clock.seconds(),
                        self.cost_interval, budgets.error if budgets is not None else None)


def secured(request: server.Request) -> None:
    for name, value in SECURITY_HEADERS:
        request.setHeader(name, value)


class DashboardView(OwnPage):
    """One writing of the overview: the page, or costs.json."""

    route = ROUTE

    def __init__(self, sources: DashboardSources, content_type: bytes, write: Callable[[DashboardSources], bytes]):
        super().__init__()
        self.sources = sources
        self.content_type = content_type
        self.write = write

    def answer(self, request: server.Request) -> bytes:
        secured(request)
        request.setHeader(b"content-type", self.content_type)
        return self.write(self.sources)


def page(sources: DashboardSources) -> bytes:
    return render_page(sources.overview(), client_token=sources.client_token)


def costs_json(sources: DashboardSources) -> bytes:
    return json_body(sources.overview().as_json())


class DashboardRefusal(ErrorPage):
    """The dashboard's answer to a caller without the client token: a 401 that has a browser
    ask for Basic credentials (the token as the password)."""

    def __init__(self, error: ProxyError):
        super().__init__(error, ROUTE)

    def render(self, request: server.Request) -> int:  # type: ignore[override]
        secured(request)
        request.setHeader(b"www-authenticate", b'Basic realm="orgproxy", charset="UTF-8"')
        return super().render(request)


class OwnDirectory(Directory):
    """``/orgproxy``: its children, and the dashboard's address without its slash sent to
    the one with it (whose relative links then lead where they should)."""

    def render(self, request: server.Request) -> bytes | int:  # type: ignore[override]
        if request.method not in (b"GET", b"HEAD") or request.postpath:
            return super().render(request)
        request.route = ROUTE  # type: ignore[attr-defined]
        request.setResponseCode(301)
        request.setHeader(b"location", b"/orgproxy/")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"The dashboard is at /orgproxy/\n"


def add_dashboard(own: Directory, sources: DashboardSources) -> None:
    own.putChild(b"", DashboardView(sources, b"text/html; charset=utf-8", page))
    own.putChild(b"costs.json", DashboardView(sources, b"application/json", costs_json))
