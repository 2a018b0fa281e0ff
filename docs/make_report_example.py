"""Make the README's report example: the real daemon and orgproxy-report, in front of the
test suite's fake usage and costs (a month of pages). Run from the project's root:

    .venv/bin/python docs/make_report_example.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.daemon import Daemon  # noqa: E402
from tests.support.fake_usage import ALIASES_TOML, FakeUsage  # noqa: E402
from tests.support.tcp_upstream import FakeUpstream  # noqa: E402


def main() -> None:
    upstream = FakeUpstream().start()
    FakeUsage().install(upstream)
    with tempfile.TemporaryDirectory() as work:
        aliases = Path(work) / "aliases.toml"
        aliases.write_text(ALIASES_TOML)
        daemon = Daemon(["--upstream", upstream.url, "--aliases", str(aliases)], cwd=Path(work)).wait_ready()
        try:
            report = Path(sys.executable).with_name("orgproxy-report")
            env = {**os.environ, "OPENAI_ADMIN_KEY": "sk-admin-example"}
            table = subprocess.run([str(report), "costs", "--since", "2026-10-01", "--until", "2026-11-01",
                                    "--by", "api_key_name", "--proxy", daemon.url,
                                    "--chart", sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "docs" / "report-example.svg")],
                                   env=env, check=True, capture_output=True, text=True).stdout
            print(table)
        finally:
            daemon.stop()
            upstream.stop()


if __name__ == "__main__":
    main()
