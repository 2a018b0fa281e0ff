"""etc/prometheus/ as Prometheus reads it: the scrape config and the rules are valid for
promtool (Debian's prometheus package, which .ci/run installs), and the alerts fire as
tests/fixtures/prometheus/orgproxy-rules.test.yml says. Collected where promtool is (see
tests/conftest.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT
from tests.support.tools import promtool as find_promtool

PROMETHEUS = ROOT / "etc" / "prometheus"
RULES = PROMETHEUS / "orgproxy-rules.yml"
RULE_TESTS = ROOT / "tests" / "fixtures" / "prometheus" / "orgproxy-rules.test.yml"


def promtool(*args: str, cwd: Path | None = None) -> str:
    found = find_promtool()
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
