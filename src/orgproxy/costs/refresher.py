"""When one provider's cost series are refreshed: at start, every ``--cost-interval``, and
after a failure with discovery's backoff (or the upstream's Retry-After), in the one
process that holds the admin key. A failure keeps the last values and counts one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from twisted.internet.defer import CancelledError

from orgproxy.costs.figures import ProviderCosts, Totals, series_of
from orgproxy.costs.store import CostStore
from orgproxy.costs.window import Window
from orgproxy.infra.logs import log
from orgproxy.infra.periodic import Periodic
from orgproxy.money import total
from orgproxy.upstream.admin_pages import AdminApiFailed

# The window's costs per (key, project or workspace), from one provider's API.
FetchCosts = Callable[[Window], Awaitable[Totals]]


class CostRefresher(Periodic):
    """Fetches ``provider``'s costs for the month so far every ``interval`` into ``store``."""

    def __init__(self, reactor: Any, provider: str, title: str, fetch_costs: FetchCosts, store: CostStore,
                 interval: float):
        super().__init__(reactor, interval)
        self.provider = provider  # as the series label it
        self.title = title  # as the log names it
        self.fetch_costs = fetch_costs  # through the Admin API's GETs, with the admin key
        self.store = store

    def startService(self) -> None:
        self.store.start()  # the last values, until the first refresh
        super().startService()

    async def work(self, why: str) -> None:
        started = self.reactor.seconds()
        try:
            totals = await self.fetch_costs(Window.at(started))
        except AdminApiFailed as e:
            self.failed(why, e.reason, e.retry_after)
        except CancelledError:
            raise
        except Exception:
            log.failure("{provider} cost series refresh ({why}) failed unexpectedly", event="cost_refresh_failed",
                        provider=self.title, why=why)
            self.failed(why, "an internal error (see the log above)", None)
        else:
            previous = self.store.figures.of(self.provider)
            self.store.replace(self.provider, ProviderCosts(tuple(series_of(self.provider, totals)),
                                                            self.reactor.seconds(), previous.failures))
            log.info("{provider} cost series ({why}): {count} series, ${total:,.2f} this month, in {seconds:.1f} s",
                     event="cost_refreshed", provider=self.title, why=why,
                     count=sum(f.exported for f in totals.values()),
                     total=total(f.month_to_date for f in totals.values()),
                     seconds=self.reactor.seconds() - started)
            self.succeeded("every --cost-interval")

    def failed(self, why: str, reason: str, retry_after: float | None) -> None:
        previous = self.store.figures.of(self.provider)
        self.store.replace(self.provider, replace(previous, failures=previous.failures + 1,
                                                  failed_at=self.reactor.seconds(), failure=reason))
        delay, how = self.retry(retry_after)
        log.warn("{provider} cost series refresh ({why}) failed: {reason}; keeping the last values;"
                 " retrying in {delay:g} s ({how})", event="cost_refresh_failed",
                 provider=self.title, why=why, reason=reason, delay=delay,
                 how=how)
