"""``twistd orgproxy``: its options, and the service tree ``makeService`` composes from the
daemon's parts (``daemon/``: one builder per concern)."""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IAgentEndpointFactory

from orgproxy.daemon.options import Options
from orgproxy.daemon.parts import Parts, build_parts
from orgproxy.daemon.service import OrgproxyService
from orgproxy.infra.metrics import MetricsFlush
from orgproxy.ops.reload import ReloadService
from orgproxy.upstream.cache import ExpirySweep

__all__ = ["Options", "makeService", "service_of"]


def makeService(options: Options, reactor: Any = None, endpoints: IAgentEndpointFactory | None = None
                ) -> OrgproxyService:
    """The daemon's service tree. ``reactor`` and ``endpoints`` (how every upstream call
    connects) are for tests to give, in memory; by default the installed reactor and
    TCP or verified TLS."""
    if reactor is None:
        from twisted.internet import reactor as installed_reactor

        reactor = installed_reactor
    return service_of(build_parts(options, reactor, endpoints))


def service_of(parts: Parts) -> OrgproxyService:
    """The service tree of ``parts``: its children start in this order, and stop in reverse."""
    options, reactor = parts.options, parts.reactor
    names, discovery, listening, front = parts.names, parts.discovery, parts.listening, parts.front
    service = OrgproxyService(
        port=options["port"], upstreams=(options["upstream"], options["anthropic-upstream"]), reactor=reactor,
        stop=parts.stop, current=names.current, history=names.history, discovers=bool(discovery.services),
        in_flight=front.in_flight, shutdown_timeout=options["shutdown-timeout"], workers=listening.pool,
        connections=parts.upstreams.closers, notes=parts.notes, log_observer=parts.process.log_observer)
    listening.service.setServiceParent(service)
    on_sighup = [found.request for found in discovery.services]
    if listening.pool is not None:
        listening.pool.setServiceParent(service)
        on_sighup.append(listening.pool.on_sighup)
    budgets = [parts.costs.budgets] if parts.costs.budgets is not None else []
    ReloadService(reactor, names.reloader, options["watch"], on_sighup, budgets).setServiceParent(service)
    MetricsFlush(parts.process.metrics, reactor).setServiceParent(service)
    if front.cache is not None:
        # Swept at least every second, at most every TTL: memory comes back within a TTL
        # of an entry's expiry, and a short TTL does not make the sweeps constant.
        ExpirySweep(front.cache, reactor, max(options["cache-ttl"], 1.0)).setServiceParent(service)
    for found in discovery.services:
        found.setServiceParent(service)
    for shares in (names.shared_unknown, names.follower, parts.first_process):
        if shares is not None:
            shares.setServiceParent(service)
    for refresher in parts.costs.refreshers:
        refresher.setServiceParent(service)
    if front.idle_trim is not None:
        front.idle_trim.setServiceParent(service)
    return service
