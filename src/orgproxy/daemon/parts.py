"""Every part of the daemon, built by one builder per concern in the order they need each
other: what ``tap.makeService`` composes into the service tree, and what a test builds to
reach the part it examines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.web.iweb import IAgentEndpointFactory

from orgproxy.daemon.costs import Costs, build_costs, load_budgets
from orgproxy.daemon.discovery import Discovery, build_discovery
from orgproxy.daemon.names import NamesPart, build_names
from orgproxy.daemon.options import Options
from orgproxy.daemon.process import ThisProcess, start_process
from orgproxy.daemon.service import DaemonStop
from orgproxy.daemon.site import Front, build_site
from orgproxy.daemon.upstreams import Upstreams, build_upstreams
from orgproxy.daemon.workers import Listening, build_listening, first_process_link
from orgproxy.ops.firstprocess import FirstProcessLink


@dataclass(frozen=True)
class Parts:
    options: Options
    reactor: Any
    stop: DaemonStop
    process: ThisProcess
    names: NamesPart
    upstreams: Upstreams
    discovery: Discovery
    first_process: FirstProcessLink | None  # a worker's
    costs: Costs
    front: Front
    listening: Listening

    @property
    def notes(self) -> list[str]:
        """What start-up found worth a warning."""
        return [*self.names.notes, *self.front.notes, *self.discovery.notes]


def build_parts(options: Options, reactor: Any, endpoints: IAgentEndpointFactory | None = None) -> Parts:
    """The daemon's parts. ``endpoints``: how every upstream call connects (tests give
    theirs, in memory); by default TCP or verified TLS.

    With --workers, the first process (the one twistd starts) also runs discovery (each
    provider's with an admin key), keeps the history and starts the workers; a worker
    (``--worker-fd``) takes the first process's learned names from the run directory and
    asks it for discovery."""
    stop = DaemonStop(reactor)
    process = start_process(options)
    names = build_names(options, reactor, process)
    budgets = load_budgets(options, reactor)
    upstreams = build_upstreams(options, reactor, endpoints)
    discovery = build_discovery(options, reactor, upstreams, names, process)
    first_process = first_process_link(options, reactor, process, stop)
    costs = build_costs(options, reactor, discovery, names.current, process, budgets)
    front = build_site(options, reactor, process, upstreams, names, discovery, costs, first_process)
    listening = build_listening(options, reactor, front.site, process, names, discovery, stop, process.twistd_options)
    return Parts(options, reactor, stop, process, names, upstreams, discovery, first_process, costs, front, listening)
