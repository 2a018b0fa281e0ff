"""etc/prometheus/: every metric the rules name is one orgproxy exports. (That Prometheus
finds them valid: test_prometheus_tools.py, where promtool is.)"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orgproxy.costs.collector import COLLECTOR
from tests.conftest import ROOT
from tests.support.answers import TOKEN
from tests.support.memory import InMemoryProxy

PROMETHEUS = ROOT / "etc" / "prometheus"
RULES = PROMETHEUS / "orgproxy-rules.yml"


@pytest.fixture
def scraped(make_proxy: Callable[..., InMemoryProxy]) -> Iterator[set[str]]:
    """Every sample name orgproxy exports with discovery and the cost series on, both run."""
    proxy = make_proxy(environ={"OPENAI_ADMIN_KEY": TOKEN})
    proxy.start_service()
    proxy.flush()
    answer = proxy.get("/metrics")
    assert answer.status == 200
    yield {sample.name for family in text_string_to_metric_families(answer.body.decode())
           for sample in family.samples}
    COLLECTOR.source = None


def test_every_metric_the_rules_name_is_one_orgproxy_exports(scraped: set[str]) -> None:
    # Every orgproxy_* name outside comments, but for the rules' own recorded series
    # (level:metric:operation names, which a colon gives away).
    lines = [line for line in RULES.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#")]
    named = set(re.findall(r"(?<![:\w])orgproxy_[a-z_]+\b(?!:)", "\n".join(lines)))
    assert named >= {"orgproxy_cost_month_to_date_usd", "orgproxy_cost_refresh_timestamp_seconds",
                     "orgproxy_discovery_runs_total"}
    assert named <= scraped, named - scraped
