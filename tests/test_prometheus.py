"""etc/prometheus/: every metric the rules name is one orgproxy exports. (That Prometheus
finds them valid: test_prometheus_tools.py, where promtool is.)"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orgproxy.costs.collector import COLLECTOR
from tests.conftest import ROOT
from tests.support.answers import TOKEN
from tests.support.memory import InMemoryProxy

PROMETHEUS = ROOT / "etc" / "prometheus"
RULES = PROMETHEUS / "orgproxy-rules.yml"


def readme_prometheus_additions() -> dict[str, str]:
    """What README.md says to add to a Prometheus configuration one already has: the YAML
    block after "Under its `rule_files:`, add:" and the one after "under its
    `scrape_configs:`, the job:", by the key each goes under."""
    readme = (ROOT / "README.md").read_text()
    found = {}
    for key in ("rule_files", "scrape_configs"):
        block = re.search(rf"`{key}:`,[^\n`]*:\n\n```yaml\n(.*?)^```$", readme, re.MULTILINE | re.DOTALL)
        assert block, f"the README says nothing to add under {key}"
        found[key] = block.group(1)
    return found


@pytest.fixture
def scraped(make_proxy: Callable[..., InMemoryProxy], tmp_path: Path) -> Iterator[set[str]]:
    """Every sample name orgproxy exports with discovery, the cost series and budgets on,
    both run."""
    budgets = tmp_path / "budgets.toml"
    budgets.write_text("[budgets]\ncheckout = 1000\n")
    proxy = make_proxy("--budgets", str(budgets), environ={"OPENAI_ADMIN_KEY": TOKEN})
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
    assert named >= {"orgproxy_cost_month_to_date_usd", "orgproxy_cost_last_day_usd",
                     "orgproxy_cost_refresh_timestamp_seconds", "orgproxy_budget_monthly_usd",
                     "orgproxy_discovery_runs_total"}
    assert named <= scraped, named - scraped


def test_the_readme_adds_to_the_operators_prometheus_configuration_and_never_replaces_it() -> None:
    readme = (ROOT / "README.md").read_text()
    # No step copies a prometheus.yml over the one the operator has.
    assert not re.search(r"^(cp|install)\b[^\n]*prometheus\.yml\b[^\n]*/etc/prometheus", readme, re.MULTILINE)
    additions = readme_prometheus_additions()
    assert additions["rule_files"].strip() == "- orgproxy-rules.yml"
    # The job it adds is the complete example's, whose first lines say what it is.
    example = (PROMETHEUS / "prometheus.yml").read_text()
    assert additions["scrape_configs"] in example
    assert example.startswith("# A complete example configuration for a Prometheus of its own")
