"""The FinOps Foundation's validator (``focus-validator`` 2.2.1, which ``make test`` installs
into ``.venv-focus-validator`` with Python 3.12) run on several FOCUS files in one process
(tests/support/focus_validator_driver.py), and its verdicts read.

The validator exits 0 whatever it finds: its verdict is its JUnit report, where a failure
or an error (a rule it could not run) is a failed check. For FOCUS 1.4 it needs the
official requirements model (tests/fixtures/focus/model-1.4.json.gz: it ships only 1.2's
and would download newer ones), with one dependency edge dropped that 2.2.1 cannot
schedule ("Active-edge cycle detected" between CommitmentDiscountUnit-C-004 and
CommitmentDiscountQuantity-C-011/012/014/015): only the order it runs those commitment
rules in changes, and they never apply to an API's costs.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

VALIDATOR = ROOT / ".venv-focus-validator"
DRIVER = Path(__file__).with_name("focus_validator_driver.py")
MODEL_1_4 = ROOT / "tests" / "fixtures" / "focus" / "model-1.4.json.gz"
MODEL_1_4_SHA256 = "3dd2c0c6fcc2c3d1792060fcbebba4ae074cd4dade8cde72958bd37a9a8b183f"
CYCLE_EDGE = "CAU-CommitmentDiscountUnit-C-004-C"
CYCLE_RULES = tuple(f"CAU-CommitmentDiscountQuantity-C-0{n}-C" for n in (11, 12, 14, 15))


@dataclass(frozen=True)
class Verdict:
    tests: int
    failed: frozenset[str]  # rule ids that failed or could not run
    ran: frozenset[str]  # rule ids checked (not skipped)


def patched_model_1_4(directory: Path) -> Path:
    """``directory`` holding the official 1.4 model as 2.2.1 can schedule it."""
    original = gzip.decompress(MODEL_1_4.read_bytes())
    assert hashlib.sha256(original).hexdigest() == MODEL_1_4_SHA256, "not the official FOCUS 1.4 model"
    model = json.loads(original)
    removed = 0
    for rule in CYCLE_RULES:
        removed += _drop_edge(model["ModelRules"][rule])
    assert removed == len(CYCLE_RULES), removed
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model-1.4.json").write_text(json.dumps(model), encoding="utf-8")
    return directory


def _drop_edge(node: Any) -> int:
    removed = 0
    if isinstance(node, dict):
        dependencies = node.get("Dependencies")
        if isinstance(dependencies, list) and CYCLE_EDGE in dependencies:
            node["Dependencies"] = [d for d in dependencies if d != CYCLE_EDGE]
            removed += 1
        removed += sum(_drop_edge(value) for value in node.values())
    elif isinstance(node, list):
        removed += sum(_drop_edge(value) for value in node)
    return removed


def validate(work: Path, jobs: dict[str, tuple[Path, str, str]]) -> dict[str, Verdict]:
    """Each job's verdict: ``jobs`` names each (data file, FOCUS version, criteria)."""
    python = VALIDATOR / "bin" / "python"
    assert python.exists(), "make test installs the validator (make .venv-focus-validator/.installed; Python 3.12)"
    # It opens focus_validator/rules/... relative to its working directory, and writes its
    # detailed log there: a directory of the test's own, with the package beside it.
    (package,) = VALIDATOR.glob("lib/python3.*/site-packages/focus_validator")
    (work / "focus_validator").symlink_to(package)
    rules = patched_model_1_4(work / "rules-1.4")
    listed = [{"data": str(data), "version": version, "rules": str(rules) if version == "1.4" else None,
               "criteria": criteria, "output": str(work / f"{name}.xml")}
              for name, (data, version, criteria) in jobs.items()]
    (work / "jobs.json").write_text(json.dumps(listed), encoding="utf-8")
    done = subprocess.run([str(python), str(DRIVER), str(work / "jobs.json")], cwd=work, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return {name: verdict(work / f"{name}.xml") for name in jobs}


def verdict(report: Path) -> Verdict:
    suites = ET.parse(report).getroot()

    def rule(case: ET.Element) -> str:
        return case.get("name", "").split(" ::")[0]
    cases = list(suites.iter("testcase"))
    return Verdict(int(suites.get("tests", "0")),
                   frozenset(rule(c) for c in cases if c.find("failure") is not None or c.find("error") is not None),
                   frozenset(rule(c) for c in cases if c.find("skipped") is None))
