"""The costs part: the cost series, which every process draws on /metrics from the figures
in the state directory and the one that is not a --workers worker fetches, with a
refresher per provider whose admin key it holds (none with --cost-interval 0); and the
budgets of --budgets (a broken file ends the start with one line)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from orgproxy.costs import anthropic_costs, openai_costs
from orgproxy.costs.budget_file import BudgetsReloader
from orgproxy.costs.budgets import BudgetsFileError
from orgproxy.costs.collector import COLLECTOR
from orgproxy.costs.refresher import CostRefresher
from orgproxy.costs.store import CostStore, store_path
from orgproxy.daemon.discovery import Discovery
from orgproxy.daemon.options import Options
from orgproxy.daemon.process import ThisProcess
from orgproxy.names.current import CurrentNames
from orgproxy.providers import ANTHROPIC, OPENAI


@dataclass(frozen=True)
class Costs:
    store: CostStore | None  # None without the cost series (off, or no admin key)
    refreshers: list[CostRefresher]
    budgets: BudgetsReloader | None  # None without --budgets


def load_budgets(options: Options, reactor: Any) -> BudgetsReloader | None:
    """The budgets of --budgets; a broken file ends the start-up with one line."""
    if options["budgets"] is None:
        return None
    budgets = BudgetsReloader(options["budgets"], reactor)
    try:
        budgets.load_first()
    except BudgetsFileError as e:
        raise SystemExit(f"orgproxy: --budgets: {e}") from None
    return budgets


def build_costs(options: Options, reactor: Any, discovery: Discovery, current: CurrentNames,
                process: ThisProcess, budgets: BudgetsReloader | None) -> Costs:
    if budgets is not None:
        process.metrics.register(budgets)  # orgproxy_budget_monthly_usd
    anthropic = discovery.anthropic_admin
    # Anthropic's costs come from its analytics API, which asks for its beta.
    analytics = anthropic.with_headers([(b"anthropic-beta", anthropic_costs.BETA)]) if anthropic is not None else None
    sources = [(provider, admin, fetch_costs) for provider, admin, fetch_costs in (
        (OPENAI, discovery.openai_admin, openai_costs.fetch_costs), (ANTHROPIC, analytics, anthropic_costs.fetch_costs))
        if admin is not None]
    # A --workers worker holds no admin key, and fetches nothing: it draws the first process's.
    worker = options["worker-number"] > 0
    if options["cost-interval"] == 0 or (not sources and not worker):
        return Costs(None, [], budgets)
    if worker:
        sources = []
    store = CostStore(store_path(options["state-dir"]), writer=not worker, most=options["cost-series-max"],
                      providers=tuple(provider.name for provider, _, _ in sources))
    COLLECTOR.follow(store, lambda: current.names)
    process.metrics.register(COLLECTOR)
    return Costs(store, [CostRefresher(reactor, provider.name, provider.title, partial(fetch_costs, admin.get), store,
                                       options["cost-interval"]) for provider, admin, fetch_costs in sources], budgets)
