"""``twistd orgproxy``'s options: one table of settings (name, default, coercion, help), read
from the command line, else from an ``ORGPROXY_*`` variable, else the default, and made
values by the same coercion whichever gave them."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from twisted.python import usage

from orgproxy.credentials import CREDENTIAL_FOR_OPTION, credential_file
from orgproxy.daemon.coercions import (
    Coercion,
    absolute_path,
    base_url,
    endpoint,
    networks,
    one_of,
    positive,
    seconds_or_off,
    text,
    whole_number,
)
from orgproxy.infra.logs import FORMATS, LEVELS
from orgproxy.infra.memory import IDLE_TRIM_DELAY
from orgproxy.infra.watch import MODES
from orgproxy.providers import ANTHROPIC, OPENAI
from orgproxy.version import version_line
from orgproxy.web.access import DEFAULT_ALLOW_FROM
from orgproxy.web.connections import RESERVED_DESCRIPTORS
from orgproxy.web.site import MAX_BUFFERED_REQUEST_BYTES

ENV_PREFIX = "ORGPROXY_"


@dataclass(frozen=True)
class Setting:
    """One option: ``help`` may say ``{default}``."""

    name: str
    help: str
    coerce: Coercion = text
    default: str | None = None  # as a flag or a variable would spell it; None: not set
    short: str | None = None
    # Given by the daemon to its own workers, not by people: left out of --help.
    internal: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("port", "Endpoint to listen on. [default: {default}]", endpoint,
            "tcp:18080:interface=127.0.0.1", "p"),
    Setting("upstream", "Base URL /v1/organization/ is forwarded to (OpenAI). [default: {default}]",
            base_url, OPENAI.upstream, "u"),
    Setting("anthropic-upstream", "Base URL /v1/organizations/ is forwarded to (Anthropic). [default: {default}]",
            base_url, ANTHROPIC.upstream),
    Setting("aliases", "Alias file (TOML or JSON) naming ids, or a directory of them (every *.toml"
            " and *.json in it). Without it, no names.", absolute_path, short="a"),
    Setting("timeout", "Seconds allowed for a whole upstream exchange. [default: {default}]",
            positive(float), "60", "t"),
    Setting("max-response-bytes", "Largest upstream body accepted, in bytes. [default: {default}]",
            positive(int), str(64 * 1024 * 1024)),
    Setting("log-level", f"Least level of orgproxy's log events: {', '.join(LEVELS)}; debug adds a line per id."
            " [default: {default}]", one_of(tuple(LEVELS)), "info"),
    Setting("log-format", "How log lines are written: text (twistd's lines) or json (one object per line, for log"
            " shippers), to standard output or twistd's --logfile. [default: {default}]", one_of(FORMATS), "text"),
    Setting("watch", "How to notice alias file changes: inotify, poll or off."
            " [default: auto, inotify where the platform has it, else poll]", one_of(MODES), "auto"),
    Setting("shutdown-timeout", "Seconds a stop waits for requests in flight to finish. [default: {default}]",
            positive(float), "10"),
    Setting("admin-key-file", "File holding an OpenAI admin key, used only to learn names from OpenAI's Admin API."
            " [default: the credential openai-admin-key in $CREDENTIALS_DIRECTORY (systemd), else the"
            " environment variable OPENAI_ADMIN_KEY; without any, no discovery]", absolute_path),
    Setting("anthropic-admin-key-file", "File holding an Anthropic Admin API key, used only to learn names from"
            " Anthropic's Admin API. [default: the credential anthropic-admin-key in $CREDENTIALS_DIRECTORY"
            " (systemd), else the environment variable ANTHROPIC_ADMIN_KEY; without any, no"
            " discovery of Anthropic's names]", absolute_path),
    Setting("state-dir", "Directory for the history of every name learned. [default: {default}]",
            absolute_path, "var"),
    Setting("discovery-interval", "Seconds between discoveries. [default: {default}]", positive(float), "900"),
    Setting("discovery-cooldown", "Least seconds between discoveries set off by unknown ids. [default: {default}]",
            positive(float), "60"),
    Setting("allow-from", "Addresses (CIDR, comma-separated) that may call; connections from others are closed as"
            " they are accepted. [default: loopback and the private ranges]", networks, DEFAULT_ALLOW_FROM),
    Setting("client-token-file", "File holding a token callers must send as X-Orgproxy-Token (never forwarded)."
            " [default: the credential client-token in $CREDENTIALS_DIRECTORY (systemd), else none]", absolute_path),
    Setting("upstream-ca", "PEM file of the CAs to trust for the upstream's TLS, in place of the system's"
            " (for an internal gateway).", absolute_path),
    Setting("max-concurrency", "Upstream requests at once; beyond, 503. [default: {default}]", positive(int), "256"),
    Setting("max-connections", "Client connections open at once; at it, the one that has waited longest without a"
            " whole request is closed for a new one. [default: what the open-files limit leaves after"
            f" --max-concurrency upstream connections and {RESERVED_DESCRIPTORS} more]", positive(int)),
    Setting("max-connections-per-source", "Client connections open at once from one address; at it, the one of that"
            " address's that has waited longest without a whole request is closed for a new one. [default: a"
            " quarter of --max-connections]", positive(int)),
    Setting("max-buffered-request-bytes", "Bytes of request bodies held in memory across all connections; beyond,"
            " 503. [default: {default}]", positive(int), str(MAX_BUFFERED_REQUEST_BYTES)),
    Setting("header-timeout", "Seconds a request's line, headers and body may take to arrive, however slowly they"
            " trickle; then the connection is closed. [default: {default}]", positive(float), "10"),
    Setting("workers", "Processes serving the one listening socket (tcp: or unix: ports). [default: {default}]",
            positive(int), "1"),
    Setting("cache-ttl", "Seconds identical GETs (same credential, path and query) are answered from memory,"
            " and identical GETs in flight share one upstream call; 0 is off. [default: {default}]",
            seconds_or_off, "0"),
    Setting("cache-max-bytes", "Most bytes of memory the cache's entries hold (bodies, headers, keys)."
            " [default: {default}]", positive(int), str(64 * 1024 * 1024)),
    Setting("cache-max-entries", "Most answers the cache keeps. [default: {default}]", positive(int), "10000"),
    Setting("cost-interval", "Seconds between refreshes of the cost series on /metrics (this month's costs per key,"
            " with each provider's admin key); 0 is off. [default: {default}]", seconds_or_off, "3600"),
    Setting("cost-series-max", "Most series of cost on /metrics, both providers together; beyond, the smallest of"
            " each are added up as api_key_name=\"other\". [default: {default}]", positive(int), "2000"),
    Setting("budgets", "TOML file of monthly budgets in dollars per key name (a [budgets] table), for both providers"
            " together: shown on the dashboard (/orgproxy/) and on /metrics as orgproxy_budget_monthly_usd,"
            " which the shipped rules alert on; read again on SIGHUP and when it changes.", absolute_path),
    Setting("idle-trim", "Seconds without a request in flight after which the memory freed since is handed back to"
            " the system (glibc); 0 is off. [default: {default}]", seconds_or_off, f"{IDLE_TRIM_DELAY:g}"),
    Setting("worker-fd", "Internal: the listening socket a worker adopts.", internal=True),
    Setting("worker-number", "Internal: which worker this process is.", whole_number, "0", internal=True),
)
DEFAULTS: Mapping[str, str] = {s.name: s.default for s in SETTINGS if s.default is not None}
# Options that differ per process with --workers.
WORKER_OWN_OPTIONS = ("workers", "worker-fd", "worker-number")
TRUE_WORDS = ("1", "true", "yes", "on")


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
    optParameters = [[s.name, s.short, None, s.help.replace("{default}", s.default or "")] for s in SETTINGS]

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
        internal = {s.name for s in SETTINGS if s.internal}
        every_option = self.longOpt
        self.longOpt = [o for o in every_option if o.rstrip("=") not in internal]
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
        # The values as text, for the command lines of --workers' other processes.
        self.given: dict[str, str] = {}
        for setting in SETTINGS:
            name = setting.name
            given = self[name] if self[name] is not None else (self.environ.get(env_name(name)) or setting.default)
            if given is None and name in CREDENTIAL_FOR_OPTION:  # systemd's LoadCredential=
                given = credential_file(self.environ, name)
            self[name] = None if given is None else setting.coerce(name, given)
            if given is not None and name not in WORKER_OWN_OPTIONS:
                # A path as made absolute; any other value as it was written.
                self.given[name] = self[name] if setting.coerce is absolute_path else given
        for option, _, _ in self.optFlags:
            self[option] = bool(self[option]) or self.environ.get(env_name(option), "").lower() in TRUE_WORDS
        if self["workers"] > 1 and self["port"].split(":", 1)[0] not in ("tcp", "unix"):
            raise usage.UsageError("--workers needs a tcp: or unix: --port (the socket is shared)")
        twistd_options = getattr(self, "parent", None) or {}
        if self["log-format"] == "json" and (twistd_options.get("syslog") or twistd_options.get("logger")):
            raise usage.UsageError("--log-format json writes to standard output or twistd's --logfile:"
                                   " leave out --syslog and --logger")
