"""Runs the FinOps Foundation's ``focus-validator`` on several files in one process (its
imports and rule loading cost seconds each time): run by the validator's own Python 3.12,
``python focus_validator_driver.py JOBS.json``, from a directory holding ``focus_validator``
(it opens its rules relative to the working directory). Standard library and the
validator only: it is not run by the project's Python.

JOBS.json is a list of ``{"data", "version", "rules" (a --rule-set-path, or null for the
model it ships), "criteria", "output"}``; each verdict goes to ``output`` as the
validator's JUnit XML, as ``focus-validator --output-type unittest`` writes it.
"""

import json
import sys

from focus_validator.validator import Validator


def main(jobs_path: str) -> None:
    with open(jobs_path, encoding="utf-8") as f:
        jobs = json.load(f)
    for job in jobs:
        rules = {"rule_set_path": job["rules"]} if job["rules"] else {}
        Validator(data_filename=job["data"], output_destination=job["output"], output_type="unittest",
                  rules_version=job["version"], rules_block_remote_download=True, focus_dataset="CostAndUsage",
                  applicability_criteria=job["criteria"], **rules).validate()


if __name__ == "__main__":
    main(sys.argv[1])
