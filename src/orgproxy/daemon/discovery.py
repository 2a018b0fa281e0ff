"""The discovery part: each provider's Admin API with its admin key (never a worker's: a
worker holds no admin key and asks the first process), and the discovery of names that
walks it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orgproxy.daemon.names import NamesPart
from orgproxy.daemon.options import Options
from orgproxy.daemon.process import ThisProcess
from orgproxy.daemon.upstreams import Upstreams
from orgproxy.fields import ANTHROPIC_FIELDS
from orgproxy.names import anthropic_admin
from orgproxy.names.discovery import DiscoveryService, KeyFileError, read_admin_key
from orgproxy.providers import ANTHROPIC
from orgproxy.upstream.admin import AdminClient


@dataclass
class Discovery:
    openai_admin: AdminClient | None  # None without a key, and in a worker
    anthropic_admin: AdminClient | None
    openai: DiscoveryService | None
    anthropic: DiscoveryService | None
    notes: list[str] = field(default_factory=list)  # worth a warning at start

    @property
    def services(self) -> list[DiscoveryService]:
        return [found for found in (self.openai, self.anthropic) if found is not None]


def build_discovery(options: Options, reactor: Any, upstreams: Upstreams, names: NamesPart,
                    process: ThisProcess) -> Discovery:
    openai_admin = anthropic_admin_api = None
    if not process.is_worker:
        openai_admin = openai_admin_client(options, reactor, upstreams)
        anthropic_admin_api = anthropic_admin_client(options, reactor, upstreams)
    openai = anthropic = None
    if openai_admin is not None:
        openai = DiscoveryService(reactor, openai_admin.get, names.current, names.history,
                                  options["discovery-interval"], options["discovery-cooldown"])
    if anthropic_admin_api is not None:
        anthropic = DiscoveryService(reactor, anthropic_admin_api.get, names.current, names.history,
                                     options["discovery-interval"], options["discovery-cooldown"],
                                     discover=anthropic_admin.discover, provider=ANTHROPIC.name,
                                     title=ANTHROPIC.title, triggering_fields=ANTHROPIC_FIELDS.triggering_fields)
    notes = []
    if openai is None and not process.is_worker:
        notes.append("OpenAI's discovery is off (no --admin-key-file or OPENAI_ADMIN_KEY):"
                     " OpenAI's names come from the alias file and the history only")
    return Discovery(openai_admin, anthropic_admin_api, openai, anthropic, notes)


def openai_admin_client(options: Options, reactor: Any, upstreams: Upstreams) -> AdminClient | None:
    """OpenAI's Admin API with --admin-key-file (or systemd's openai-admin-key credential)
    or OPENAI_ADMIN_KEY: the key goes only to --upstream, as a bearer token."""
    key = admin_key(options, "admin-key-file", "OPENAI_ADMIN_KEY")
    if key is None:
        return None
    return AdminClient(reactor, options["upstream"], upstreams.admin_agent,
                       [(b"Authorization", b"Bearer " + key.encode())], options["timeout"],
                       options["max-response-bytes"])


def anthropic_admin_client(options: Options, reactor: Any, upstreams: Upstreams) -> AdminClient | None:
    """Anthropic's Admin API with --anthropic-admin-key-file (or systemd's anthropic-admin-key
    credential) or ANTHROPIC_ADMIN_KEY: the key goes only to --anthropic-upstream, as
    x-api-key, and only from discovery and the cost refresh."""
    key = admin_key(options, "anthropic-admin-key-file", "ANTHROPIC_ADMIN_KEY")
    if key is None:
        return None
    return AdminClient(reactor, options["anthropic-upstream"], upstreams.admin_agent,
                       [(b"x-api-key", key.encode()), (b"anthropic-version", anthropic_admin.ANTHROPIC_VERSION)],
                       options["timeout"], options["max-response-bytes"], title=ANTHROPIC.title)


def admin_key(options: Options, option: str, variable: str) -> str | None:
    """A discovery credential: the file of ``--option`` (or systemd's credential standing
    in for it: openai-admin-key, anthropic-admin-key), else the environment ``variable``
    (never a flag's value, which ps would show)."""
    if options[option]:
        try:
            return read_admin_key(options[option])
        except KeyFileError as e:
            raise SystemExit(f"orgproxy: {e}") from None
    return options.environ.get(variable, "").strip() or None
