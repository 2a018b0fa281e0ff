"""``twistd orgproxy``: the options, and the service tree they build."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, NoReturn, Protocol, cast
from urllib.parse import urlsplit

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, TimeoutError, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError, ReactorNotRunning
from twisted.web.iweb import IAgent, IAgentEndpointFactory
from twisted.logger import ILogObserver
from twisted.python import usage
from twisted.python.components import Componentized

from orgproxy.body.amend import Amended
from orgproxy.costs import anthropic_costs, openai_costs
from orgproxy.costs.budget_file import BudgetsReloader
from orgproxy.costs.budgets import BudgetsFileError
from orgproxy.costs.collector import COLLECTOR
from orgproxy.costs.refresher import CostRefresher
from orgproxy.costs.store import CostStore, store_path
from orgproxy.credentials import CREDENTIAL_FOR_OPTION, credential_file
from orgproxy.fields import ANTHROPIC_FIELDS
from orgproxy.names import anthropic_admin
from orgproxy.names.aliasfile import AliasFileError
from orgproxy.names.discovery import DiscoveryService, KeyFileError, read_admin_key
from orgproxy.names.history import History, Remembered
from orgproxy.names.textcheck import as_text
from orgproxy.names.shared import NamesFollower, NamesPublisher
from orgproxy.names.snapshot import CurrentNames
from orgproxy.names.unknown import UnknownIds
from orgproxy.names.unknown_shared import SharedUnknownIds
from orgproxy.ops import metrics
from orgproxy.ops.firstprocess import FirstProcessLink
from orgproxy.ops.logs import FORMATS, LEVELS, log, observer_for, set_level
from orgproxy.ops.memory import IDLE_TRIM_DELAY, IdleTrim, heap_trimmer, keep_large_buffers
from orgproxy.ops.reload import AliasReloader, ReloadService, off_reactor_thread
from orgproxy.ops.rundir import RunDirectory
from orgproxy.ops.signals import SignalHandler
from orgproxy.ops.watch import MODES
from orgproxy.ops.workers import SharedAccepts, WorkerPool, adopted_port_service, twistd_arguments, worker_argv
from orgproxy.plural import counted
from orgproxy.providers import ANTHROPIC, OPENAI, Provider
from orgproxy.upstream.admin import AdminClient
from orgproxy.upstream.agent import pooled_agent, upstream_endpoints
from orgproxy.upstream.cache import ExpirySweep, ResponseCache
from orgproxy.upstream.client import Upstream
from orgproxy.version import version_line
from orgproxy.web.access import DEFAULT_ALLOW_FROM, AllowList, is_loopback_only, parse_networks, read_token
from orgproxy.web.connections import (
    RESERVED_DESCRIPTORS,
    Throttled,
    ThrottledAcceptErrors,
    accept_errors_observer,
    default_max_connections,
    default_max_connections_per_source,
    open_files_limit,
    said_out_of_descriptors,
)
from orgproxy.web.dashboard import DashboardSources
from orgproxy.web.proxy import InFlight, OrganizationProxy
from orgproxy.web.resources import Health, UnknownReport
from orgproxy.web.site import MAX_BUFFERED_REQUEST_BYTES, OrgproxySite, make_site

ENV_PREFIX = "ORGPROXY_"
DEFAULTS: Mapping[str, str] = {
    "port": "tcp:18080:interface=127.0.0.1",
    "upstream": OPENAI.upstream,
    "anthropic-upstream": ANTHROPIC.upstream,
    "timeout": "60",
    "max-response-bytes": str(64 * 1024 * 1024),
    "log-level": "info",
    "log-format": "text",
    "watch": "auto",
    "shutdown-timeout": "10",
    "state-dir": "var",
    "discovery-interval": "900",
    "discovery-cooldown": "60",
    "allow-from": DEFAULT_ALLOW_FROM,
    "max-concurrency": "256",
    "workers": "1",
    "cache-ttl": "0",
    "cache-max-bytes": str(64 * 1024 * 1024),
    "cost-interval": "3600",
    "cost-series-max": "2000",
    "cache-max-entries": "10000",
    "header-timeout": "10",
    "max-buffered-request-bytes": str(MAX_BUFFERED_REQUEST_BYTES),
    "idle-trim": f"{IDLE_TRIM_DELAY:g}",
}


# Options naming files or directories.
PATH_OPTIONS = ("aliases", "admin-key-file", "anthropic-admin-key-file", "state-dir", "client-token-file",
                "upstream-ca", "budgets")
# Options that differ per process with --workers.
WORKER_OWN_OPTIONS = ("workers", "worker-fd", "worker-number")
# Options the daemon gives its own workers, not for people: left out of --help.
INTERNAL_OPTIONS = ("worker-fd", "worker-number")


def env_name(option: str) -> str:
    """The environment variable for an option: ``--max-response-bytes`` -> ORGPROXY_MAX_RESPONSE_BYTES."""
    return ENV_PREFIX + option.upper().replace("-", "_")


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Forward /v1/organization/* to OpenAI and add api_key_name, project_name and user_name"
        " beside every api_key_id, project_id and user_id in the JSON that comes back; likewise"
        " /v1/organizations/* to Anthropic, with api_key_name, workspace_name, account_name and"
        " service_account_name. Every"
        " option can also be set by an environment variable ORGPROXY_<OPTION> (for example"
        " ORGPROXY_PORT); a flag given on the command line wins."
    )
    optFlags = [
        ["replace-ids", None, "Write names into the id fields themselves (api_key_id), keeping each"
         " id in <field>_original: for tools that read only the id. [env: ORGPROXY_REPLACE_IDS=1]"],
    ]
    optParameters = [
        ["port", "p", None, f"Endpoint to listen on. [default: {DEFAULTS['port']}]"],
        ["upstream", "u", None,
         f"Base URL /v1/organization/ is forwarded to (OpenAI). [default: {DEFAULTS['upstream']}]"],
        ["anthropic-upstream", None, None,
         f"Base URL /v1/organizations/ is forwarded to (Anthropic). [default: {DEFAULTS['anthropic-upstream']}]"],
        ["aliases", "a", None, "Alias file (TOML or JSON) naming ids, or a directory of them (every *.toml"
         " and *.json in it). Without it, no names."],
        ["timeout", "t", None, f"Seconds allowed for a whole upstream exchange. [default: {DEFAULTS['timeout']}]"],
        ["max-response-bytes", None, None,
         f"Largest upstream body accepted, in bytes. [default: {DEFAULTS['max-response-bytes']}]"],
        ["log-level", None, None,
         f"Least level of orgproxy's log events: {', '.join(LEVELS)}; debug adds a line per id."
         f" [default: {DEFAULTS['log-level']}]"],
        ["log-format", None, None,
         "How log lines are written: text (twistd's lines) or json (one object per line, for log"
         f" shippers), to standard output or twistd's --logfile. [default: {DEFAULTS['log-format']}]"],
        ["watch", None, None,
         "How to notice alias file changes: inotify, poll or off."
         " [default: auto, inotify where the platform has it, else poll]"],
        ["shutdown-timeout", None, None,
         "Seconds a stop waits for requests in flight to finish."
         f" [default: {DEFAULTS['shutdown-timeout']}]"],
        ["admin-key-file", None, None,
         "File holding an OpenAI admin key, used only to learn names from OpenAI's Admin API."
         " [default: the credential openai-admin-key in $CREDENTIALS_DIRECTORY (systemd), else the"
         " environment variable OPENAI_ADMIN_KEY; without any, no discovery]"],
        ["anthropic-admin-key-file", None, None,
         "File holding an Anthropic Admin API key, used only to learn names from Anthropic's"
         " Admin API. [default: the credential anthropic-admin-key in $CREDENTIALS_DIRECTORY"
         " (systemd), else the environment variable ANTHROPIC_ADMIN_KEY; without any, no"
         " discovery of Anthropic's names]"],
        ["state-dir", None, None,
         f"Directory for the history of every name learned. [default: {DEFAULTS['state-dir']}]"],
        ["discovery-interval", None, None,
         f"Seconds between discoveries. [default: {DEFAULTS['discovery-interval']}]"],
        ["discovery-cooldown", None, None,
         "Least seconds between discoveries set off by unknown ids."
         f" [default: {DEFAULTS['discovery-cooldown']}]"],
        ["allow-from", None, None,
         "Addresses (CIDR, comma-separated) that may call; connections from others are closed as"
         " they are accepted. [default: loopback and the private ranges]"],
        ["client-token-file", None, None,
         "File holding a token callers must send as X-Orgproxy-Token (never forwarded)."
         " [default: the credential client-token in $CREDENTIALS_DIRECTORY (systemd), else none]"],
        ["upstream-ca", None, None,
         "PEM file of the CAs to trust for the upstream's TLS, in place of the system's"
         " (for an internal gateway)."],
        ["max-concurrency", None, None,
         f"Upstream requests at once; beyond, 503. [default: {DEFAULTS['max-concurrency']}]"],
        ["max-connections", None, None,
         "Client connections open at once; at it, the one that has waited longest without a whole"
         " request is closed for a new one."
         " [default: what the open-files limit leaves after --max-concurrency upstream connections"
         f" and {RESERVED_DESCRIPTORS} more]"],
        ["max-connections-per-source", None, None,
         "Client connections open at once from one address; at it, the one of that address's that"
         " has waited longest without a whole request is closed for a new one. [default: a quarter"
         " of --max-connections]"],
        ["max-buffered-request-bytes", None, None,
         "Bytes of request bodies held in memory across all connections; beyond, 503."
         f" [default: {DEFAULTS['max-buffered-request-bytes']}]"],
        ["header-timeout", None, None,
         "Seconds a request's line, headers and body may take to arrive, however slowly they"
         f" trickle; then the connection is closed. [default: {DEFAULTS['header-timeout']}]"],
        ["workers", None, None,
         f"Processes serving the one listening socket (tcp: or unix: ports). [default: {DEFAULTS['workers']}]"],
        ["cache-ttl", None, None,
         "Seconds identical GETs (same credential, path and query) are answered from memory,"
         f" and identical GETs in flight share one upstream call; 0 is off. [default: {DEFAULTS['cache-ttl']}]"],
        ["cache-max-bytes", None, None,
         "Most bytes of memory the cache's entries hold (bodies, headers, keys)."
         f" [default: {DEFAULTS['cache-max-bytes']}]"],
        ["cache-max-entries", None, None,
         f"Most answers the cache keeps. [default: {DEFAULTS['cache-max-entries']}]"],
        ["cost-interval", None, None,
         "Seconds between refreshes of the cost series on /metrics (this month's costs per key,"
         f" with each provider's admin key); 0 is off. [default: {DEFAULTS['cost-interval']}]"],
        ["cost-series-max", None, None,
         "Most series of cost on /metrics, both providers together; beyond, the smallest of each"
         f" are added up as api_key_name=\"other\". [default: {DEFAULTS['cost-series-max']}]"],
        ["budgets", None, None,
         "TOML file of monthly budgets in dollars per key name (a [budgets] table), for both providers"
         " together: shown on the dashboard (/orgproxy/) and on /metrics as orgproxy_budget_monthly_usd,"
         " which the shipped rules alert on; read again on SIGHUP and when it changes."],
        ["idle-trim", None, None,
         "Seconds without a request in flight after which the memory freed since is handed back to"
         f" the system (glibc); 0 is off. [default: {DEFAULTS['idle-trim']}]"],
        ["worker-fd", None, None, "Internal: the listening socket a worker adopts."],
        ["worker-number", None, None, "Internal: which worker this process is."],
    ]

    def __init__(self, environ: Mapping[str, str] | None = None):
        super().__init__()
        self.environ = os.environ if environ is None else environ

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            if getattr(self, "parent", None) is None:
                raise  # not under twistd: the caller handles it
            # twistd would print the whole --help before the reason; the reason alone says it.
            raise SystemExit(f"orgproxy: {e} (see twistd orgproxy --help)") from None

    def opt_version(self) -> NoReturn:
        """Print orgproxy's version (and Twisted's and Python's) and exit."""
        print(version_line("orgproxy", twisted=True))
        sys.exit(0)

    def getUsage(self, width: int | None = None) -> str:
        # --help leaves out the options only the daemon itself passes to its workers.
        every_option = self.longOpt
        self.longOpt = [o for o in every_option if o.rstrip("=") not in INTERNAL_OPTIONS]
        try:
            return super().getUsage(width)
        finally:
            self.longOpt = every_option

    def worker_arguments(self) -> list[str]:
        """This plugin's options as given (defaults and environment resolved), for the
        command lines of --workers' other processes."""
        return ([f"--{name}={value}" for name, value in self.given.items()]
                + [f"--{name}" for name, _, _ in self.optFlags if self[name]])

    def postOptions(self) -> None:
        # Whether the operator chose who may call, or left it to the default.
        self.allow_from_chosen = self["allow-from"] is not None or env_name("allow-from") in self.environ
        for option, _, _, _ in self.optParameters:
            if self[option] is None:
                self[option] = self.environ.get(env_name(option)) or DEFAULTS.get(option)
        for option in CREDENTIAL_FOR_OPTION:  # systemd's LoadCredential=, where no option names a file
            if self[option] is None:
                self[option] = credential_file(self.environ, option)
        # Files are named absolutely: twistd changes to --rundir after making the service,
        # and reloads, and --workers' other processes, must find the same files.
        for option in PATH_OPTIONS:
            if self[option] is not None:
                self[option] = os.path.abspath(self[option])
        # The values as text, for the command lines of --workers' other processes.
        self.given = {option: self[option] for option, _, _, _ in self.optParameters
                      if self[option] is not None and option not in WORKER_OWN_OPTIONS}
        for option, _, _ in self.optFlags:
            self[option] = bool(self[option]) or (
                self.environ.get(env_name(option), "").lower() in ("1", "true", "yes", "on"))
        self["timeout"] = _positive(self, "timeout", float)
        self["max-response-bytes"] = _positive(self, "max-response-bytes", int)
        self["shutdown-timeout"] = _positive(self, "shutdown-timeout", float)
        self["discovery-interval"] = _positive(self, "discovery-interval", float)
        self["discovery-cooldown"] = _positive(self, "discovery-cooldown", float)
        self["max-concurrency"] = _positive(self, "max-concurrency", int)
        for option in ("max-connections", "max-connections-per-source"):
            if self[option] is not None:
                self[option] = _positive(self, option, int)
        self["max-buffered-request-bytes"] = _positive(self, "max-buffered-request-bytes", int)
        self["header-timeout"] = _positive(self, "header-timeout", float)
        self["workers"] = _positive(self, "workers", int)
        self["cache-max-bytes"] = _positive(self, "cache-max-bytes", int)
        self["cache-max-entries"] = _positive(self, "cache-max-entries", int)
        self["cost-series-max"] = _positive(self, "cost-series-max", int)
        for option in ("cost-interval", "idle-trim", "cache-ttl"):
            self[option] = _seconds_or_off(self, option)
        self["worker-number"] = int(self["worker-number"] or 0)
        if self["workers"] > 1 and self["port"].split(":", 1)[0] not in ("tcp", "unix"):
            raise usage.UsageError("--workers needs a tcp: or unix: --port (the socket is shared)")
        try:
            self["allow-from"] = parse_networks(self["allow-from"])
        except ValueError as e:
            raise usage.UsageError(f"--allow-from: {e}") from None
        if self["watch"] not in MODES:
            raise usage.UsageError(f"--watch must be one of {', '.join(MODES)}, not {self['watch']!r}")
        if self["log-level"] not in LEVELS:
            raise usage.UsageError(f"--log-level must be one of {', '.join(LEVELS)}, not {self['log-level']!r}")
        if self["log-format"] not in FORMATS:
            raise usage.UsageError(f"--log-format must be one of {', '.join(FORMATS)}, not {self['log-format']!r}")
        twistd_options = getattr(self, "parent", None) or {}
        if self["log-format"] == "json" and (twistd_options.get("syslog") or twistd_options.get("logger")):
            raise usage.UsageError("--log-format json writes to standard output or twistd's --logfile:"
                                   " leave out --syslog and --logger")
        _check_upstream(self["upstream"])
        _check_upstream(self["anthropic-upstream"], "--anthropic-upstream")
        _check_endpoint(self["port"])


def _positive(options: Options, option: str, kind: type[int] | type[float]) -> Any:
    try:
        value = kind(options[option])
    except ValueError:
        value = 0
    if value <= 0:
        raise usage.UsageError(f"--{option} must be a positive {kind.__name__}, not {options[option]!r}")
    return value


def _seconds_or_off(options: Options, option: str) -> float:
    try:
        value = float(options[option])
    except ValueError:
        value = -1.0
    if not value >= 0:  # NaN too
        raise usage.UsageError(f"--{option} must be 0 (off) or more seconds, not {options.given[option]!r}")
    return value


def _check_upstream(url: str, option: str = "--upstream") -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise usage.UsageError(f"{option} must be an http:// or https:// URL, not {url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise usage.UsageError(f"{option} takes a base URL with no credentials, query or fragment")


def _check_endpoint(description: str) -> None:
    # Parsing needs no reactor (none may be installed yet while options are parsed).
    try:
        serverFromString(cast(Any, None), description)
    except (ValueError, TypeError, KeyError) as e:
        raise usage.UsageError(f"--port {description!r} is not an endpoint description: {e}") from None


class OrgproxyService(MultiService):
    """The listening port, the alias reloader, discovery and the workers, started and
    stopped in order: a stop lets requests in flight finish (here and in every worker at
    once) before the pool closes."""

    def __init__(self, options: Options, reactor: Any, current: CurrentNames, history: History | None,
                 in_flight: InFlight, connections: Sequence[Callable[[], Deferred[Any]]] = ()):
        super().__init__()
        self.options = options
        self.reactor = reactor
        self.current = current
        self.history = history  # None in a worker: the first process keeps it
        self.in_flight = in_flight
        self.connections = connections  # each closes a pool of kept-alive upstream connections
        self.notes: list[str] = []  # what start-up found worth a warning
        # twistd's own SIGTERM handler makes the process end by re-raising the signal,
        # which supervisors report as a crash; a requested stop ends with status 0.
        self.sigterm = SignalHandler(reactor, signal.SIGTERM, self.stop_requested)

    stopping = False
    # What makeService built, for whoever inspects the service (tests, mostly).
    site: OrgproxySite
    discovery: DiscoveryService | None  # OpenAI's
    anthropic_discovery: DiscoveryService | None = None
    unknown: UnknownIds
    workers: WorkerPool | None = None  # the first process's, with --workers
    cache: ResponseCache | None
    idle_trim: IdleTrim | None = None  # None with --idle-trim 0
    # The log observer to offer twistd (see logs.text_lines), or None for twistd's own.
    log_observer: ILogObserver | None = None

    def stop_requested(self) -> None:
        if self.stopping:
            return  # a second SIGTERM (the supervisor's to the group, and ours to workers)
        self.stopping = True
        log.info("SIGTERM: no longer accepting connections; shutting down")
        self.stop_reactor()

    def first_process_gone(self) -> None:
        """A worker's first process ended (however: kill -9 too): stop as on SIGTERM."""
        if self.stopping:
            return
        self.stopping = True
        log.warn("The first process is gone: no longer accepting connections; shutting down")
        self.stop_reactor()

    def give_up(self, reason: str) -> None:
        """Stop the daemon for good: something it cannot work without keeps failing."""
        log.critical("Stopping: {reason}", reason=reason)
        self.stopping = True
        self.stop_reactor()

    def stop_reactor(self) -> None:
        try:
            self.reactor.stop()
        except ReactorNotRunning:
            pass  # already stopping for another reason

    def setServiceParent(self, parent: Any) -> None:
        super().setServiceParent(parent)
        # twistd starts logging after makeService, with an ILogObserver component of
        # the application where there is one (the way a .tac file chooses its observer).
        if self.log_observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.log_observer)

    def privilegedStartService(self) -> None:
        # The port is bound here (strports raises at once rather than logging and serving
        # nothing); a port in use ends the start-up with one line instead of a traceback.
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            raise SystemExit(f"orgproxy: cannot listen on {self.options['port']}: {e.socketError}") from None

    def startService(self) -> None:
        super().startService()
        self.reactor.callWhenRunning(self.reactor_running)

    def reactor_running(self) -> None:
        # Only now has the reactor installed its own signal handlers, which ours replace;
        # the "serving" line comes last, so whoever waits for it can also signal us.
        self.sigterm.install()
        for note in self.notes:
            log.warn("{note}", note=note)
        by_source = self.current.names.by_source
        remembered = by_source.get("history", 0)
        if self.history is not None:
            log.info("{names} remembered in {path}", names=counted(remembered, "name"), count=remembered,
                     path=self.history.path)
        else:  # a worker: the first process learns names, and remembers them
            learned = remembered + by_source.get("discovered", 0)
            log.info("{names} learned and remembered by the first process", names=counted(learned, "name"),
                     count=learned)
        if self.current.source is not None:
            aliased = by_source.get("aliases", 0)
            log.info("{names} from {path}", names=counted(aliased, "name"), count=aliased,
                     path=self.current.source)
        elif self.discovery is not None or self.anthropic_discovery is not None or self.history is None:
            log.info("No alias file (--aliases or ORGPROXY_ALIASES): names come from discovery"
                     " and the history")
        elif not remembered:
            log.warn("No alias file (--aliases or ORGPROXY_ALIASES) and no discovery: running with"
                     " no names; every id is named \"unknown\"")
        log.info("orgproxy serving on {port}, forwarding /v1/organization/ to {upstream}"
                 " and /v1/organizations/ to {anthropic_upstream}", port=self.options["port"],
                 upstream=self.options["upstream"], anthropic_upstream=self.options["anthropic-upstream"])

    def stopService(self) -> Deferred[None]:
        # The SIGTERM handler stays until the end: a second SIGTERM during the stop (a
        # supervisor signalling the whole group) must not reach twistd's, which would
        # stop the reactor again.
        self.stopping = True
        return Deferred.fromCoroutine(self.stop_in_order())

    async def stop_in_order(self) -> None:
        # The port stops accepting, the reloader stops, and the workers are told to stop
        # (the pool does not wait for them); this process drains while they do, so that
        # the whole daemon stops within one --shutdown-timeout.
        await super().stopService()
        draining = Deferred.fromCoroutine(self.drain(self.options["shutdown-timeout"]))
        await DeferredList([draining, self.workers.all_ended() if self.workers is not None else succeed(None)])
        metrics.flush()  # what the last requests counted (with workers, for the others' scrapes)
        await DeferredList([close() for close in self.connections])
        if self.history is not None:
            self.history.close()

    async def drain(self, timeout: float) -> None:
        in_flight = self.in_flight
        if not in_flight.count:
            return
        log.info("Waiting up to {timeout:g} s for {requests} in flight", timeout=timeout,
                 count=in_flight.count, requests=counted(in_flight.count, "request"))
        try:
            await in_flight.idle().addTimeout(timeout, self.reactor)
        except TimeoutError:
            log.warn("{requests} still in flight after {timeout:g} s; stopping anyway",
                     count=in_flight.count, requests=counted(in_flight.count, "request"), timeout=timeout)


def load_names(path: str | None, reactor: Any) -> tuple[CurrentNames, AliasReloader | None]:
    """The names from the alias file; a broken file ends the start-up with one line."""
    current = CurrentNames()
    if path is None:
        return current, None
    reloader = AliasReloader(path, current, reactor, off_reactor_thread(reactor))
    try:
        reloader.load_first()
    except AliasFileError as e:
        raise SystemExit(f"orgproxy: alias file: {e}") from None
    return current, reloader


def open_history(directory: str, current: CurrentNames, reactor: Any) -> tuple[History, str | None]:
    """The store of every name learned, its names put in force; a problem to report, if any.

    A state directory that cannot be written (read-only, full, not a directory) does not
    stop the daemon, as it does not once running: it serves, with the names the store
    remembers if it can be read, and keeps no history this run (warned at start).
    """
    try:
        history, problem = History.open(directory, reactor.seconds())
    except (OSError, sqlite3.Error) as e:
        history, remembered, problem = unkept_history(directory, e)
    else:
        try:
            remembered = history.load()
        except OSError as e:
            history.close()
            history, remembered, problem = unkept_history(directory, e)
    learned = as_text((r.learned for r in remembered), "the history")
    current.history = {(r.provider, r.id_field, r.id): r for r in learned}
    current.learned_at.update({(r.learned.provider, r.learned.id_field, r.learned.id): r.last_seen
                               for r in remembered})
    current.rebuild()
    return history, problem


def unkept_history(directory: str, why: Exception) -> tuple[History, list[Remembered], str]:
    """A history kept in memory only, what the store remembers (read without writing),
    and the warning that says so."""
    remembered = History.read_only(directory)
    return History.unkept(directory), remembered, (
        f"--state-dir {directory} cannot be used ({why}): serving without keeping the history of names;"
        f" the {len(remembered)} names it remembers are in force, names learned from now on are"
        " forgotten when the daemon stops")


def admin_key(options: Options, option: str = "admin-key-file", variable: str = "OPENAI_ADMIN_KEY") -> str | None:
    """A discovery credential: the file of ``--option`` (or systemd's credential standing
    in for it: openai-admin-key, anthropic-admin-key), else the environment ``variable``
    (never a flag's value, which ps would show)."""
    if options[option]:
        try:
            return read_admin_key(options[option])
        except KeyFileError as e:
            raise SystemExit(f"orgproxy: {e}") from None
    return options.environ.get(variable, "").strip() or None


class SeesUnknownIds(Protocol):
    def unknown_seen(self, unknown_ids: Mapping[str, str]) -> None: ...


def unknown_ids_noted(unknown: UnknownIds, clock: Any, discovery: SeesUnknownIds | None,
                      shared: SharedUnknownIds | None = None, provider: str = "openai") -> Callable[[Amended], None]:
    """What the proxy does with ids nobody could name in ``provider``'s answers: remember
    them for the report (and for the other processes' reports), and let that provider's
    discovery look for them (in a worker, through the first process)."""
    def note(amended: Amended) -> None:
        unknown.record(amended.occurrences, amended.unknown_ids, clock.seconds(), provider)
        if shared is not None:
            shared.changed()
        if discovery is not None:
            discovery.unknown_seen(amended.unknown_ids)
    return note


def run_directory(options: Options) -> RunDirectory | None:
    """Where the daemon's processes share what they write, with --workers (else None): the
    first process makes it afresh, a worker finds it."""
    if options["workers"] == 1 and options["worker-fd"] is None:
        return None
    run = RunDirectory.under(options["state-dir"])
    try:
        if options["worker-fd"] is None:
            run.prepare()
        else:
            run.check()
    except OSError as e:
        why = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else str(e)
        raise SystemExit(f"orgproxy: --state-dir: the directory the workers share: {why}") from None
    return run


def anthropic_admin_client(options: Options, reactor: Any, agent: IAgent) -> AdminClient | None:
    """Anthropic's Admin API with --anthropic-admin-key-file (or systemd's anthropic-admin-key
    credential) or ANTHROPIC_ADMIN_KEY: the key goes only to --anthropic-upstream, as
    x-api-key, and only from discovery and the cost refresh."""
    key = admin_key(options, "anthropic-admin-key-file", "ANTHROPIC_ADMIN_KEY")
    if key is None:
        return None
    return AdminClient(reactor, options["anthropic-upstream"], agent,
                       [(b"x-api-key", key.encode()), (b"anthropic-version", anthropic_admin.ANTHROPIC_VERSION)],
                       options["timeout"], options["max-response-bytes"], title=ANTHROPIC.title)


def anthropic_discovery(options: Options, reactor: Any, admin: AdminClient | None, names: CurrentNames,
                        history: History | None) -> DiscoveryService | None:
    """Discovery of Anthropic's names, where its Admin API has a key."""
    if admin is None:
        return None
    return DiscoveryService(reactor, admin.get, names, history, options["discovery-interval"],
                            options["discovery-cooldown"], discover=anthropic_admin.discover,
                            provider=ANTHROPIC.name, title=ANTHROPIC.title,
                            triggering_fields=ANTHROPIC_FIELDS.triggering_fields)


def cost_series(options: Options, reactor: Any, openai: AdminClient | None, anthropic: AdminClient | None,
                current: CurrentNames) -> tuple[CostStore | None, list[CostRefresher]]:
    """The cost series on /metrics (with either admin key, unless --cost-interval is 0):
    every process draws them from the figures in the state directory (the store, returned
    for the dashboard; None without them); the one process that is not a --workers worker
    fetches them, with a refresher per provider (returned)."""
    worker = options["worker-number"] > 0  # a --workers worker, which holds no admin key
    # Anthropic's costs come from its analytics API, which asks for its beta.
    analytics = anthropic.with_headers([(b"anthropic-beta", anthropic_costs.BETA)]) if anthropic is not None else None
    sources = [(provider, admin, fetch_costs) for provider, admin, fetch_costs in (
        (OPENAI, openai, openai_costs.fetch_costs), (ANTHROPIC, analytics, anthropic_costs.fetch_costs))
        if admin is not None]
    if options["cost-interval"] == 0 or (not sources and not worker):
        return None, []
    if worker:
        sources = []
    store = CostStore(store_path(options["state-dir"]), writer=not worker, most=options["cost-series-max"],
                      providers=tuple(provider.name for provider, _, _ in sources))
    COLLECTOR.follow(store, lambda: current.names)
    metrics.installed().register(COLLECTOR)
    return store, [CostRefresher(reactor, provider.name, provider.title, partial(fetch_costs, admin.get), store,
                                 options["cost-interval"]) for provider, admin, fetch_costs in sources]


def load_budgets(path: str | None, reactor: Any) -> BudgetsReloader | None:
    """The budgets of --budgets; a broken file ends the start-up with one line."""
    if path is None:
        return None
    budgets = BudgetsReloader(path, reactor)
    try:
        budgets.load_first()
    except BudgetsFileError as e:
        raise SystemExit(f"orgproxy: --budgets: {e}") from None
    return budgets


def makeService(options: Options, reactor: Any = None, endpoints: IAgentEndpointFactory | None = None
                ) -> OrgproxyService:
    """The daemon's service tree. ``reactor`` and ``endpoints`` (how every upstream call
    connects) are for tests to give, in memory; by default the installed reactor and
    TCP or verified TLS.

    With --workers, the first process (the one twistd starts) also runs discovery (each
    provider's with an admin key), keeps the history and starts the workers; a worker
    (``--worker-fd``) takes the first process's learned names from the run directory and
    asks it for discovery."""
    if reactor is None:
        from twisted.internet import reactor as installed_reactor

        reactor = installed_reactor
    set_level(options["log-level"])
    keep_large_buffers()
    is_worker = options["worker-fd"] is not None
    if is_worker:
        log.namespace = f"orgproxy.worker{options['worker-number']}"
    names, reloader = load_names(options["aliases"], reactor)
    budgets = load_budgets(options["budgets"], reactor)
    history, history_problem = (None, None) if is_worker else open_history(options["state-dir"], names, reactor)
    run = run_directory(options)
    # Before any metric exists: with workers, every process writes its own to the run
    # directory, and a scrape reads them all.
    process_metrics = metrics.start(run.metrics if run is not None else None, first_process=not is_worker)
    if endpoints is None:
        try:
            endpoints = upstream_endpoints(reactor, options["timeout"], options["upstream-ca"])
        except (OSError, ValueError) as e:
            raise SystemExit(f"orgproxy: --upstream-ca: {getattr(e, 'strerror', None) or e}"
                             + (f": {options['upstream-ca']}" if isinstance(e, OSError) else "")) from None
    agent, discovery_pool = pooled_agent(reactor, endpoints)  # discovery's, through treq
    upstream = Upstream(reactor, options["upstream"], endpoints, options["timeout"], options["max-response-bytes"])
    anthropic: Provider = replace(ANTHROPIC, upstream=options["anthropic-upstream"])
    anthropic_upstream = Upstream(reactor, anthropic.upstream, endpoints, options["timeout"],
                                  options["max-response-bytes"], title=anthropic.title)
    client_token = None
    if options["client-token-file"]:
        try:
            client_token = read_token(options["client-token-file"])
        except (OSError, ValueError) as e:
            raise SystemExit(f"orgproxy: --client-token-file: {e}") from None
    # A worker never holds an admin key: discovery is the first process's.
    key = None if is_worker else admin_key(options)
    discovery = None
    admin = None
    if key is not None:
        admin = AdminClient(reactor, options["upstream"], agent, [(b"Authorization", b"Bearer " + key.encode())],
                            options["timeout"], options["max-response-bytes"])
        discovery = DiscoveryService(reactor, admin.get, names, history,
                                     options["discovery-interval"], options["discovery-cooldown"])
    admin_of_anthropic = None if is_worker else anthropic_admin_client(options, reactor, agent)
    discovery_of_anthropic = anthropic_discovery(options, reactor, admin_of_anthropic, names, history)
    discoveries = [found for found in (discovery, discovery_of_anthropic) if found is not None]
    cost_store, cost_refreshers = cost_series(options, reactor, admin, admin_of_anthropic, names)
    if budgets is not None:
        process_metrics.register(budgets)  # orgproxy_budget_monthly_usd
    cache = (ResponseCache(reactor, options["cache-ttl"], options["cache-max-bytes"], options["cache-max-entries"])
             if options["cache-ttl"] > 0 else None)
    idle_trim = IdleTrim(reactor, options["idle-trim"], heap_trimmer()) if options["idle-trim"] > 0 else None
    in_flight = (InFlight(options["max-concurrency"], on_change=idle_trim.in_flight_changed) if idle_trim is not None
                 else InFlight(options["max-concurrency"]))
    process_metrics.follow_in_flight(lambda: in_flight.count)
    unknown = UnknownIds()
    shared_unknown = SharedUnknownIds(reactor, run.unknown, unknown) if run is not None else None
    follower = first_process = None
    if is_worker:
        assert run is not None
        # Names following: by --watch's means, but never off (this is not the operator's file).
        follower = NamesFollower(reactor, run.names, names, "poll" if options["watch"] == "off" else options["watch"])
        follower.load()
    service = OrgproxyService(options, reactor, names, history, in_flight,
                              [upstream.close, anthropic_upstream.close, discovery_pool.closeCachedConnections])
    if is_worker:
        first_process = FirstProcessLink(reactor, service.first_process_gone, options["discovery-cooldown"])
    proxy = OrganizationProxy(upstream.forward, names, reactor, in_flight,
                              unknown_ids_noted(unknown, reactor, discovery or first_process, shared_unknown),
                              replace_ids=options["replace-ids"], cache=cache)
    anthropic_asks = (first_process.asker(anthropic.name, ANTHROPIC_FIELDS.triggering_fields)
                      if first_process is not None else None)
    anthropic_proxy = OrganizationProxy(anthropic_upstream.forward, names, reactor, in_flight,
                                        unknown_ids_noted(unknown, reactor, discovery_of_anthropic or anthropic_asks,
                                                          shared_unknown, anthropic.name),
                                        replace_ids=options["replace-ids"], cache=cache, provider=anthropic)
    anthropic_status = follower.status_of(anthropic.name) if follower is not None else None
    health = Health(names, discovery or follower, {OPENAI.name: (options["upstream"], discovery or follower),
                                                   anthropic.name: (anthropic.upstream,
                                                                    discovery_of_anthropic or anthropic_status)})
    files_limit = open_files_limit()
    max_connections = options["max-connections"] or default_max_connections(options["max-concurrency"], files_limit)
    unknown_report = UnknownReport(shared_unknown.merged if shared_unknown is not None else (lambda: unknown), names)
    site = make_site(proxy=proxy, anthropic_proxy=anthropic_proxy, health=health, unknown_report=unknown_report,
                     allow=AllowList(options["allow-from"]), client_token=client_token, reactor=reactor,
                     header_timeout=options["header-timeout"], max_connections=max_connections,
                     max_connections_per_source=(options["max-connections-per-source"]
                                                 or default_max_connections_per_source(max_connections)),
                     max_buffered_request_bytes=options["max-buffered-request-bytes"],
                     dashboard=DashboardSources(reactor, names, unknown_report.unknown, cost_store, budgets,
                                                options["cost-interval"], client_token is not None))
    process_metrics.follow_names(lambda: names.names)
    service.site, service.discovery, service.unknown, service.cache = site, discovery, unknown, cache
    service.anthropic_discovery = discovery_of_anthropic
    twistd_options = getattr(options, "parent", None)  # twistd's own, when twistd runs it
    if twistd_options is not None:
        service.log_observer = observer_for(options["log-format"], twistd_options)
    if history_problem is not None:
        service.notes.append(history_problem)
    if not is_loopback_only(options["port"]) and client_token is None and not options.allow_from_chosen:
        service.notes.append(
            f"!!! Listening on {options['port']}, beyond this machine, with neither --allow-from nor"
            " --client-token-file: any host in the private ranges can use it to call OpenAI or Anthropic with"
            " whatever admin key it sends. Restrict it.")
    if max_connections + options["max-concurrency"] + RESERVED_DESCRIPTORS > files_limit:
        service.notes.append(
            f"--max-connections {max_connections} and --max-concurrency {options['max-concurrency']} leave too few"
            f" of the {files_limit} file descriptors this process may open (ulimit -n, LimitNOFILE=) for upstream"
            " connections and files: under load, connections may be refused for want of one (EMFILE)")
    if discovery is None and not is_worker:
        service.notes.append("OpenAI's discovery is off (no --admin-key-file or OPENAI_ADMIN_KEY):"
                             " OpenAI's names come from the alias file and the history only")
    on_sighup: list[Callable[[str], None]] = [found.request for found in discoveries]
    # Accept errors (EMFILE, ...) said once a minute, not once per connection refused.
    accept_errors = accept_errors_observer(Throttled(reactor, said_out_of_descriptors))
    if is_worker:
        adopted = adopted_port_service(reactor, int(options["worker-fd"]), site)
        adopted.endpoint = ThrottledAcceptErrors(adopted.endpoint, accept_errors)
        adopted.setServiceParent(service)
    else:
        listening = strports.service(options["port"], site, reactor=reactor)
        listening.endpoint = ThrottledAcceptErrors(listening.endpoint, accept_errors)
        if options["workers"] > 1:
            assert run is not None and shared_unknown is not None
            shared = listening.endpoint = SharedAccepts(listening.endpoint)
            plugin_arguments = options.worker_arguments()
            twistd_argument_list = twistd_arguments(twistd_options)  # now, before twistd's chdir
            pool_of_workers = WorkerPool(reactor, options["workers"],
                                         lambda number: worker_argv(twistd_argument_list, plugin_arguments, number),
                                         shared, options["shutdown-timeout"], service.give_up)
            pool_of_workers.on_ended += [process_metrics.worker_ended, shared_unknown.absorb]
            service.workers = pool_of_workers
            pool_of_workers.discovery_wanted = {found.provider: found.unknown_seen_by for found in discoveries}
            on_sighup.append(pool_of_workers.on_sighup)
            share_learned_names(run, names, discoveries)
        listening.setServiceParent(service)
        if options["workers"] > 1:
            pool_of_workers.setServiceParent(service)
    ReloadService(reactor, reloader, options["watch"], on_sighup,
                  [budgets] if budgets is not None else []).setServiceParent(service)
    metrics.MetricsFlush(process_metrics, reactor).setServiceParent(service)
    if cache is not None:
        # Swept at least every second, at most every TTL: memory comes back within a TTL
        # of an entry's expiry, and a short TTL does not make the sweeps constant.
        ExpirySweep(cache, reactor, max(options["cache-ttl"], 1.0)).setServiceParent(service)
    for found in discoveries:
        found.setServiceParent(service)
    for shares in (shared_unknown, follower, first_process):
        if shares is not None:
            shares.setServiceParent(service)
    for refresher in cost_refreshers:
        refresher.setServiceParent(service)
    if idle_trim is not None:
        idle_trim.setServiceParent(service)
    service.idle_trim = idle_trim
    return service


def share_learned_names(run: RunDirectory, names: CurrentNames, discoveries: Sequence[DiscoveryService]) -> None:
    """The first process's learned names (every provider's), written for the workers now
    (before any starts) and after every walk of each provider's discovery."""
    publisher = NamesPublisher(run.names, names, lambda: {found.provider: found.status() for found in discoveries})
    publisher.publish()
    for found in discoveries:
        found.after_walk.append(publisher.publish)
