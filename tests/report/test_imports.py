"""The report is a small client: importing it pulls in none of the daemon's machinery or
the optional extras (matplotlib loads only when a chart is drawn, pyarrow only for
Parquet); its progress line needs nothing beyond the standard library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orgproxy

HEAVY = ("numpy", "simdjson", "twisted", "treq", "OpenSSL", "matplotlib", "tqdm", "pyarrow")
PROBE = """
import json, pkgutil, sys
import orgproxy.report, orgproxy.report.cli
modules = [f"orgproxy.report.{m.name}" for m in pkgutil.iter_modules(orgproxy.report.__path__)]
print(json.dumps({"report": modules, "loaded": sorted(sys.modules)}))
"""


def test_the_report_cli_imports_every_report_module_and_nothing_heavy() -> None:
    # A fresh interpreter: this test process has long imported Twisted and the rest.
    source = str(Path(orgproxy.__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": source}, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    loaded = set(found["loaded"])
    assert len(found["report"]) >= 8 and set(found["report"]) <= loaded, "cli.py imports every report module"
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}, sorted(m for m in loaded if m.split(".")[0] in HEAVY)
