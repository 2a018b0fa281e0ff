"""FOCUS's metadata for an export, written beside it as ``FILE.metadata.json``: what a cost
tool reads without opening the data.

1.2: the schema alone (SchemaId, FocusVersion, CreationDate, DataGenerator and a
definition per column). 1.3 and 1.4 put it in sections: ``DataGenerator``, the
``DatasetInstance`` the file belongs to (one Cost and Usage instance per set of vendors and
billing accounts, so that the next month's export continues the same instance),
``Recency`` with a time sector per day of the range (complete once the day ended
``SETTLE_DAYS`` ago: Anthropic finalises its figures about 30 days after the usage, and
OpenAI says nothing, so both are treated alike), and ``Schema``. Pure: no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from orgproxy.report.focus import COLUMNS, JSON_TYPE, STRING, time_text
from orgproxy.report.focus_charge import BillingAccount, Vendor
from orgproxy.report.focus_openai import TAG_PREFIX

SETTLE_DAYS = 30
DATASET = "CostAndUsage"
GENERATOR = "orgproxy-report"


@dataclass
class Written:
    """What the metadata says about the rows, gathered as they were written."""

    rows: int = 0
    description_max: int = 0
    decimal_scale: tuple[int, int] | None = None  # Parquet's (precision, scale), where it fixed them
    vendors: dict[str, BillingAccount] = field(default_factory=dict)  # vendor name -> its account

    def saw(self, vendor: Vendor, account: BillingAccount, description: str) -> None:
        self.rows += 1
        self.vendors.setdefault(vendor.name, account)
        if len(description) > self.description_max:
            self.description_max = len(description)


def schema_id(version: str) -> str:
    """The column list's own id: the same columns, the same SchemaId."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "orgproxy:focus:" + version + ":" + ",".join(
        f"{name}={kind}" for name, kind in COLUMNS[version])))


def column_definitions(version: str, written: Written) -> list[dict[str, Any]]:
    definitions = []
    for name, kind in COLUMNS[version]:
        definition: dict[str, Any] = {"ColumnName": name, "DataType": kind.upper().replace("/", "")}
        if kind == STRING:
            definition["StringEncoding"] = "UTF-8"
            if name == "ChargeDescription":
                definition["StringMaxLength"] = written.description_max
        if kind == JSON_TYPE and name == "Tags":
            definition["ProviderTagPrefixes"] = [TAG_PREFIX]
        if definition["DataType"] == "DECIMAL" and written.decimal_scale is not None and version != "1.2":
            definition["NumericPrecision"], definition["NumberScale"] = written.decimal_scale
        definitions.append(definition)
    return definitions


def metadata(version: str, written: Written, created: datetime, generator_version: str,
             days: Sequence[date]) -> dict[str, Any]:
    """The metadata of a file of ``version`` covering ``days``."""
    generator = GENERATOR + (f" {generator_version}" if generator_version != "unknown" else "")
    if version == "1.2":
        return {"SchemaId": schema_id(version), "FocusVersion": version, "CreationDate": time_text(created),
                "DataGenerator": generator, "ColumnDefinition": column_definitions(version, written)}
    instance = dataset_instance_id(written.vendors)
    vendors = ", ".join(sorted(written.vendors)) or "no vendor"
    return {
        "DataGenerator": {"DataGenerator": GENERATOR},
        "DatasetInstance": [{"DatasetInstanceId": instance, "FocusDatasetId": DATASET,
                             "DatasetInstanceName": f"Billed cost per API key, daily ({vendors})"}],
        "Recency": [{"DatasetInstanceId": instance, "DatasetInstanceLastUpdated": time_text(created),
                     "TimeSectors": time_sectors(days, created)}],
        "Schema": {"SchemaId": schema_id(version), "FocusVersion": version, "CreationDate": time_text(created),
                   "DataGeneratorVersion": generator_version, "DatasetInstanceId": instance,
                   "ColumnDefinition": column_definitions(version, written)},
    }


def dataset_instance_id(vendors: dict[str, BillingAccount]) -> str:
    """The same vendors and billing accounts, the same instance, export after export."""
    accounts = ",".join(f"{name}={account.id}" for name, account in sorted(vendors.items()))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"orgproxy:focus:{DATASET}:{accounts}"))


def time_sectors(days: Sequence[date], created: datetime) -> list[dict[str, Any]]:
    sectors = []
    for day in days:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = start + timedelta(days=1)
        sectors.append({"TimeSectorStart": time_text(start), "TimeSectorEnd": time_text(end),
                        "TimeSectorComplete": end + timedelta(days=SETTLE_DAYS) <= created,
                        "TimeSectorLastUpdated": time_text(created)})
    return sectors
