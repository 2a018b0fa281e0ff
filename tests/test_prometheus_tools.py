"""etc/prometheus/ as Prometheus reads it: the scrape config and the rules are valid for
promtool (Debian's prometheus package, which make test installs), and the alerts fire as
tests/fixtures/prometheus/orgproxy-rules.test.yml says. Collected where promtool is (see
tests/conftest.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT
from tests.test_prometheus import readme_prometheus_additions
from tests.support.tools import promtool as find_promtool

PROMETHEUS = ROOT / "etc" / "prometheus"
RULES = PROMETHEUS / "orgproxy-rules.yml"
RULE_TESTS = ROOT / "tests" / "fixtures" / "prometheus" / "orgproxy-rules.test.yml"


def promtool(*args: str, cwd: Path | None = None) -> str:
    found = find_promtool()
    assert found, "promtool is missing: apt-get install prometheus (as make test does)"
    done = subprocess.run([found, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_finds_the_rules_valid_and_the_alerts_firing_as_tested() -> None:
    assert "SUCCESS: 10 rules found" in promtool("check", "rules", str(RULES))
    assert "SUCCESS" in promtool("test", "rules", str(RULE_TESTS))


def test_promtool_finds_the_scrape_config_valid_with_the_client_token_file_beside_it(tmp_path: Path) -> None:
    # The config, unchanged, beside a token file (it names it relative to itself).
    for name in ("prometheus.yml", "orgproxy-rules.yml"):
        shutil.copy(PROMETHEUS / name, tmp_path / name)
    (tmp_path / "orgproxy-client-token").write_text("client-token\n")
    assert "is valid prometheus config" in promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert not (PROMETHEUS / "orgproxy-client-token").exists(), "no token is shipped"


def added_under(config: str, key: str, addition: str) -> str:
    """``config`` with ``addition`` written on the lines right after its ``key:`` line, as
    an operator adds to a list there by hand."""
    lines = config.splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if line.rstrip() == f"{key}:")
    return "".join(lines[:at + 1]) + addition + "".join(lines[at + 1:])


def test_the_readmes_job_added_to_debians_configuration_is_valid_and_keeps_its_jobs(tmp_path: Path) -> None:
    additions = readme_prometheus_additions()
    debian = (ROOT / "tests" / "fixtures" / "prometheus" / "debian-prometheus.yml").read_text()
    config = added_under(added_under(debian, "rule_files", additions["rule_files"]),
                         "scrape_configs", additions["scrape_configs"])
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(RULES, tmp_path / "orgproxy-rules.yml")  # the README's install of the rules
    (tmp_path / "orgproxy-client-token").write_text("client-token\n")
    checked = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert "is valid prometheus config" in checked and "SUCCESS: 10 rules found" in checked
    # Added to, never replaced: Debian's own jobs are all still there.
    assert all(line in config.splitlines() for line in debian.splitlines())
    assert {"job_name: 'prometheus'", "job_name: node", "job_name: orgproxy"} <= {
        line.strip().removeprefix("- ") for line in config.splitlines()}
