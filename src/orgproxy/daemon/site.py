"""The front: the proxy leaves (one per provider, sharing the cache, the requests in
flight and the idle trim), the pages and the dashboard, the guard's client token and the
admission caps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orgproxy.daemon.costs import Costs
from orgproxy.daemon.discovery import Discovery
from orgproxy.daemon.names import NamesPart, SeesUnknownIds, unknown_ids_noted
from orgproxy.daemon.options import Options
from orgproxy.daemon.process import ThisProcess
from orgproxy.daemon.upstreams import Upstreams
from orgproxy.fields import ANTHROPIC_FIELDS
from orgproxy.infra.memory import IdleTrim, heap_trimmer
from orgproxy.ops.firstprocess import FirstProcessLink
from orgproxy.providers import OPENAI
from orgproxy.upstream.cache import ResponseCache
from orgproxy.web.access import AllowList, is_loopback_only, read_token
from orgproxy.web.connections import (
    RESERVED_DESCRIPTORS,
    default_max_connections,
    default_max_connections_per_source,
    open_files_limit,
)
from orgproxy.web.dashboard import DashboardSources
from orgproxy.web.proxy import InFlight, OrganizationProxy
from orgproxy.web.resources import Health, UnknownReport
from orgproxy.web.site import OrgproxySite, make_site


@dataclass
class Front:
    """What faces the clients: the site, and what its proxy leaves share."""

    site: OrgproxySite
    in_flight: InFlight
    cache: ResponseCache | None  # None with --cache-ttl 0
    idle_trim: IdleTrim | None  # None with --idle-trim 0
    notes: list[str] = field(default_factory=list)  # worth a warning at start


def build_site(options: Options, reactor: Any, process: ThisProcess, upstreams: Upstreams, names: NamesPart,
               discovery: Discovery, costs: Costs, first_process: FirstProcessLink | None) -> Front:
    """``first_process``: a worker's link to the first process, which discovers for it."""
    client_token = None
    if options["client-token-file"]:
        try:
            client_token = read_token(options["client-token-file"])
        except (OSError, ValueError) as e:
            raise SystemExit(f"orgproxy: --client-token-file: {e}") from None
    cache = (ResponseCache(reactor, options["cache-ttl"], options["cache-max-bytes"], options["cache-max-entries"])
             if options["cache-ttl"] > 0 else None)
    idle_trim = IdleTrim(reactor, options["idle-trim"], heap_trimmer()) if options["idle-trim"] > 0 else None
    in_flight = (InFlight(options["max-concurrency"], on_change=idle_trim.in_flight_changed) if idle_trim is not None
                 else InFlight(options["max-concurrency"]))
    process.metrics.follow_in_flight(lambda: in_flight.count)
    anthropic = upstreams.anthropic_provider
    openai_asks: SeesUnknownIds | None = discovery.openai or first_process
    anthropic_asks: SeesUnknownIds | None = discovery.anthropic or (
        first_process.asker(anthropic.name, ANTHROPIC_FIELDS.triggering_fields) if first_process is not None else None)
    proxy = OrganizationProxy(upstreams.openai.forward, names.current, reactor, in_flight,
                              unknown_ids_noted(names, reactor, openai_asks),
                              replace_ids=options["replace-ids"], cache=cache)
    anthropic_proxy = OrganizationProxy(upstreams.anthropic.forward, names.current, reactor, in_flight,
                                        unknown_ids_noted(names, reactor, anthropic_asks, anthropic.name),
                                        replace_ids=options["replace-ids"], cache=cache, provider=anthropic)
    follower = names.follower
    anthropic_status = discovery.anthropic or (follower.status_of(anthropic.name) if follower is not None else None)
    health = Health(names.current, discovery.openai or follower, {
        OPENAI.name: (options["upstream"], discovery.openai or follower),
        anthropic.name: (anthropic.upstream, anthropic_status)})
    shared_unknown = names.shared_unknown
    files_limit = open_files_limit()
    max_connections = options["max-connections"] or default_max_connections(options["max-concurrency"], files_limit)
    unknown_report = UnknownReport(shared_unknown.merged if shared_unknown is not None else (lambda: names.unknown),
                                   names.current)
    site = make_site(proxy=proxy, anthropic_proxy=anthropic_proxy, health=health, unknown_report=unknown_report,
                     allow=AllowList(options["allow-from"]), client_token=client_token, reactor=reactor,
                     header_timeout=options["header-timeout"], max_connections=max_connections,
                     max_connections_per_source=(options["max-connections-per-source"]
                                                 or default_max_connections_per_source(max_connections)),
                     max_buffered_request_bytes=options["max-buffered-request-bytes"],
                     dashboard=DashboardSources(reactor, names.current, unknown_report.unknown, costs.store,
                                                costs.budgets, options["cost-interval"], client_token is not None))
    process.metrics.follow_names(lambda: names.current.names.by_source)
    notes = []
    if not is_loopback_only(options["port"]) and client_token is None and not options.allow_from_chosen:
        notes.append(
            f"!!! Listening on {options['port']}, beyond this machine, with neither --allow-from nor"
            " --client-token-file: any host in the private ranges can use it to call OpenAI or Anthropic with"
            " whatever admin key it sends. Restrict it.")
    if max_connections + options["max-concurrency"] + RESERVED_DESCRIPTORS > files_limit:
        notes.append(
            f"--max-connections {max_connections} and --max-concurrency {options['max-concurrency']} leave too few"
            f" of the {files_limit} file descriptors this process may open (ulimit -n, LimitNOFILE=) for upstream"
            " connections and files: under load, connections may be refused for want of one (EMFILE)")
    return Front(site, in_flight, cache, idle_trim, notes)
