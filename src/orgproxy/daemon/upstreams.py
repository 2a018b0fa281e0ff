"""The upstreams part: how every upstream call connects (TCP, or TLS verified against the
system's CAs or --upstream-ca's), forwarding's own client to each provider, and the
pooled Agent discovery and the cost series call the Admin APIs through."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.iweb import IAgent, IAgentEndpointFactory

from orgproxy.daemon.options import Options
from orgproxy.providers import ANTHROPIC, Provider
from orgproxy.upstream.agent import pooled_agent, upstream_endpoints
from orgproxy.upstream.client import Upstream


@dataclass(frozen=True)
class Upstreams:
    openai: Upstream
    anthropic: Upstream
    anthropic_provider: Provider  # Anthropic, at --anthropic-upstream
    admin_agent: IAgent  # for the Admin APIs, through treq
    closers: Sequence[Callable[[], Deferred[Any]]]  # each closes a pool of kept-alive connections


def build_upstreams(options: Options, reactor: Any, endpoints: IAgentEndpointFactory | None) -> Upstreams:
    """``endpoints``: how every upstream call connects (tests give theirs, in memory)."""
    if endpoints is None:
        try:
            endpoints = upstream_endpoints(reactor, options["timeout"], options["upstream-ca"])
        except (OSError, ValueError) as e:
            raise SystemExit(f"orgproxy: --upstream-ca: {getattr(e, 'strerror', None) or e}"
                             + (f": {options['upstream-ca']}" if isinstance(e, OSError) else "")) from None
    agent, admin_pool = pooled_agent(reactor, endpoints)
    openai = Upstream(reactor, options["upstream"], endpoints, options["timeout"], options["max-response-bytes"])
    anthropic = replace(ANTHROPIC, upstream=options["anthropic-upstream"])
    to_anthropic = Upstream(reactor, anthropic.upstream, endpoints, options["timeout"],
                            options["max-response-bytes"], title=anthropic.title)
    return Upstreams(openai, to_anthropic, anthropic, agent,
                     (openai.close, to_anthropic.close, admin_pool.closeCachedConnections))
