"""The listening part: where this process serves (``--port``, or a worker's adopted
socket) with its accept errors said once a minute, and with ``--workers`` the pool of the
other processes, given what they need of the first: its learned names (written for them
now, and after every walk) and its discovery (when they see an unknown id)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.application import strports
from twisted.application.internet import StreamServerEndpointService

from orgproxy.daemon.discovery import Discovery
from orgproxy.daemon.names import NamesPart
from orgproxy.daemon.options import Options
from orgproxy.daemon.process import ThisProcess
from orgproxy.daemon.service import DaemonStop
from orgproxy.infra.rundir import RunDirectory
from orgproxy.names.current import CurrentNames
from orgproxy.names.discovery import DiscoveryService
from orgproxy.names.shared import NamesPublisher
from orgproxy.ops.firstprocess import FirstProcessLink
from orgproxy.ops.listening import FirstProcessSocket, SharedAccepts, adopted_port_service, unix_socket_file
from orgproxy.ops.workers import WorkerPool, twistd_arguments, worker_argv
from orgproxy.web.connections import Throttled, ThrottledAcceptErrors, accept_errors_observer, said_out_of_descriptors
from orgproxy.web.site import OrgproxySite


@dataclass(frozen=True)
class Listening:
    service: StreamServerEndpointService
    pool: WorkerPool | None  # the first process's, with --workers


def first_process_link(options: Options, reactor: Any, process: ThisProcess, stop: DaemonStop
                       ) -> FirstProcessLink | None:
    """A worker's link to its first process: it stops when that process is gone, and asks
    it for discovery."""
    if not process.is_worker:
        return None
    return FirstProcessLink(reactor, stop.first_process_gone, options["discovery-cooldown"])


def build_listening(options: Options, reactor: Any, site: OrgproxySite, process: ThisProcess, names: NamesPart,
                    discovery: Discovery, stop: DaemonStop, twistd_options: Mapping[str, Any] | None) -> Listening:
    accept_errors = accept_errors_observer(Throttled(reactor, said_out_of_descriptors))
    if process.is_worker:
        adopted = adopted_port_service(reactor, int(options["worker-fd"]), site, options["port"])
        adopted.endpoint = ThrottledAcceptErrors(adopted.endpoint, accept_errors)
        return Listening(adopted, None)
    # strports: a port in use ends the start (a bare endpoint service would log and serve nothing).
    listening = strports.service(options["port"], site, reactor=reactor)
    if options["workers"] == 1:
        listening.endpoint = ThrottledAcceptErrors(listening.endpoint, accept_errors)
        return Listening(listening, None)
    assert process.run is not None and names.shared_unknown is not None
    shared = listening.endpoint = SharedAccepts(
        ThrottledAcceptErrors(FirstProcessSocket(reactor, options["port"]), accept_errors),
        unix_socket_file(options["port"]))
    plugin_arguments = options.worker_arguments()
    twistd_argument_list = twistd_arguments(twistd_options)  # now, before twistd's chdir
    pool = WorkerPool(reactor, options["workers"],
                      lambda number: worker_argv(twistd_argument_list, plugin_arguments, number),
                      shared, options["shutdown-timeout"], stop.give_up)
    pool.on_ended += [process.metrics.worker_ended, names.shared_unknown.absorb]
    pool.discovery_wanted = {found.provider: found.unknown_seen_by for found in discovery.services}
    share_learned_names(process.run, names.current, discovery.services)
    return Listening(listening, pool)


def share_learned_names(run: RunDirectory, names: CurrentNames, discoveries: Sequence[DiscoveryService]) -> None:
    """The first process's learned names (every provider's), written for the workers now
    (before any starts) and after every walk of each provider's discovery."""
    publisher = NamesPublisher(run.names, names, lambda: {found.provider: found.status() for found in discoveries})
    publisher.publish()
    for found in discoveries:
        found.after_walk.append(publisher.publish)
