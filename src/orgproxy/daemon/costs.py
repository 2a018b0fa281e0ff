"""The cost series part: every process draws them on /metrics from the figures in the state
directory; the one that is not a --workers worker fetches them, with a refresher per
provider whose admin key it holds (none with --cost-interval 0)."""

from __future__ import annotations

from functools import partial
from typing import Any

from orgproxy.costs import anthropic_costs, openai_costs
from orgproxy.costs.collector import COLLECTOR
from orgproxy.costs.refresher import CostRefresher
from orgproxy.costs.store import CostStore, store_path
from orgproxy.daemon.discovery import Discovery
from orgproxy.daemon.options import Options
from orgproxy.daemon.process import ThisProcess
from orgproxy.names.current import CurrentNames
from orgproxy.providers import ANTHROPIC, OPENAI


def build_cost_series(options: Options, reactor: Any, discovery: Discovery, current: CurrentNames,
                      process: ThisProcess) -> list[CostRefresher]:
    anthropic = discovery.anthropic_admin
    # Anthropic's costs come from its analytics API, which asks for its beta.
    analytics = anthropic.with_headers([(b"anthropic-beta", anthropic_costs.BETA)]) if anthropic is not None else None
    sources = [(provider, admin, fetch_costs) for provider, admin, fetch_costs in (
        (OPENAI, discovery.openai_admin, openai_costs.fetch_costs), (ANTHROPIC, analytics, anthropic_costs.fetch_costs))
        if admin is not None]
    # A --workers worker holds no admin key, and fetches nothing: it draws the first process's.
    worker = options["worker-number"] > 0
    if options["cost-interval"] == 0 or (not sources and not worker):
        return []
    if worker:
        sources = []
    store = CostStore(store_path(options["state-dir"]), writer=not worker, most=options["cost-series-max"],
                      providers=tuple(provider.name for provider, _, _ in sources))
    COLLECTOR.follow(store, lambda: current.names)
    process.metrics.register(COLLECTOR)
    return [CostRefresher(reactor, provider.name, provider.title, partial(fetch_costs, admin.get), store,
                          options["cost-interval"]) for provider, admin, fetch_costs in sources]
