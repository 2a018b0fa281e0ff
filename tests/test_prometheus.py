"""etc/prometheus/: the scrape config and the rules are valid for Prometheus (promtool, from
Debian's prometheus package, which .ci/run installs), the alerts fire as
tests/fixtures/prometheus/orgproxy-rules.test.yml says, and every metric the rules name
is one orgproxy exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orgproxy.ops.costs import COLLECTOR
from tests.conftest import ROOT
from tests.support.answers import TOKEN
from tests.support.memory import InMemoryProxy

PROMETHEUS = ROOT / "etc" / "prometheus"
RULES = PROMETHEUS / "orgproxy-rules.yml"
RULE_TESTS = ROOT / "tests" / "fixtures" / "prometheus" / "orgproxy-rules.test.yml"


def promtool(*args: str, cwd: Path | None = None) -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: apt-get install prometheus (as .ci/run does)"
    done = subprocess.run([found, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_finds_the_rules_valid_and_the_alerts_firing_as_tested() -> None:
    assert "SUCCESS: 6 rules found" in promtool("check", "rules", str(RULES))
    assert "SUCCESS" in promtool("test", "rules", str(RULE_TESTS))


def test_promtool_finds_the_scrape_config_valid_with_the_client_token_file_beside_it(tmp_path: Path) -> None:
    # The config, unchanged, beside a token file (it names it relative to itself).
    for name in ("prometheus.yml", "orgproxy-rules.yml"):
        shutil.copy(PROMETHEUS / name, tmp_path / name)
    (tmp_path / "orgproxy-client-token").write_text("client-token\n")
    assert "is valid prometheus config" in promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert not (PROMETHEUS / "orgproxy-client-token").exists(), "no token is shipped"


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
