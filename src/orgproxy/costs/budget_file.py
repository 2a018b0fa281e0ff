"""The budgets in force (``--budgets``): read at start, read again on SIGHUP and when the file
changes (by ``ops/reload.py``'s service, with the alias files), and exported for Prometheus.

A reload that finds the file broken keeps the budgets in force and says why, once per version
of the file (its stamp is remembered, a broken one's too), in the log and on the dashboard.
Each process reads the file itself (with ``--workers`` too: the first process passes SIGHUP
on), so every scrape shows the same budgets:

    orgproxy_budget_monthly_usd{api_key_name="checkout"} 1000.0

which the rules' ``OrgproxyMonthlyBudgetExceeded`` compares each name's cost with.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from twisted.internet.interfaces import IReactorTime

from orgproxy.costs.budgets import NO_BUDGETS, Budgets, BudgetsFileError, load_budgets
from orgproxy.infra.logs import log
from orgproxy.infra.watch import file_stamp
from orgproxy.plural import counted

BUDGET = "orgproxy_budget_monthly_usd"


class BudgetsReloader:
    """The budgets of the file at ``path``; the previous ones stay when it cannot be read."""

    def __init__(self, path: str, clock: IReactorTime):
        self.path = path
        self.clock = clock
        self.budgets: Budgets = NO_BUDGETS
        self.seen: Hashable | None = None  # the stamp of the version last tried
        self.loaded_at: float | None = None
        self.error: str | None = None  # why the file in place is not the one in force

    def load_first(self) -> None:
        """The load at start-up: a BudgetsFileError propagates (there is nothing to keep)."""
        self.seen = file_stamp(self.path)
        self.budgets = load_budgets(self.path)
        self.loaded_at = self.clock.seconds()

    def reload_if_changed(self) -> None:
        """Reload when the file is not the version last tried (what the watcher calls)."""
        if file_stamp(self.path) != self.seen:
            self.reload("the file changed")

    def reload(self, why: str) -> None:
        self.seen = file_stamp(self.path)
        try:
            budgets = load_budgets(self.path)
        except BudgetsFileError as e:
            self.error = str(e)
            log.error("Budgets not reloaded ({why}); the previous {budgets} stay in force: {error}",
                      event="budgets_not_reloaded", why=why,
                      budgets=counted(len(self.budgets), "budget"), count=len(self.budgets), error=self.error)
            return
        self.budgets, self.error, self.loaded_at = budgets, None, self.clock.seconds()
        log.info("Budgets reloaded ({why}): {budgets} from {path}", event="budgets_reloaded", why=why,
                 budgets=counted(len(budgets), "budget"), count=len(budgets), path=self.path)

    # A collector for prometheus_client's registry.

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(BUDGET, "Each key name's monthly budget in USD (--budgets), for its cost on both"
                                   " providers together.", labels=["api_key_name"])
        for name, dollars in self.budgets.items():
            family.add_metric([name], float(dollars))  # exact until Prometheus takes a double
        yield family
