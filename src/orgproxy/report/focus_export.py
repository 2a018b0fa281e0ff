"""``orgproxy-report costs --format focus`` (or ``focus-parquet``): the range's costs asked
of orgproxy grouped by id (so every row keeps its ``api_key_id`` and what orgproxy adds
beside it), read with exact decimals, and written as FOCUS 1.2 with a metadata sidecar
``FILE.metadata.json`` when written to a file. Parquet needs pyarrow (the `report`
extra), imported only when asked for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from orgproxy.jsonvalues import refuse_constant
from orgproxy.report.apis import OPENAI_REPORTS
from orgproxy.report.dates import windows
from orgproxy.report.errors import ReportError
from orgproxy.report.fetch import Fetcher
from orgproxy.report.focus import (
    COLUMNS,
    DATETIME,
    DECIMAL,
    GROUP_BY,
    BillingAccount,
    Row,
    as_csv,
    cell,
    focus_rows,
    metadata,
)
from orgproxy.report.output import write_text

FORMATS = ("focus", "focus-parquet")


def exact_json(body: bytes) -> Any:
    """A page with its numbers as Decimal (``0.1`` stays 0.1, not 0.1000000000000000055...)."""
    return json.loads(body, parse_float=Decimal, parse_constant=refuse_constant)


def costs_buckets(fetcher: Fetcher, since: date, until: date) -> Iterator[dict[str, Any]]:
    """Every daily bucket of [since, until), grouped by every dimension, by id (OpenAI's
    costs: FOCUS is exported for them alone)."""
    for start, end in windows(since, until, OPENAI_REPORTS.max_days("costs")):
        yield from fetcher.buckets(OPENAI_REPORTS.path("costs"), OPENAI_REPORTS.window_query(start, end, list(GROUP_BY)))


def generator() -> str:
    try:
        return f"orgproxy-report {version('orgproxy')}"
    except PackageNotFoundError:
        return "orgproxy-report"


def export(fetcher: Fetcher, since: date, until: date, account: BillingAccount, form: str,
           output: str | None) -> str:
    """What to print: the CSV, or nothing when it went to ``output`` (with its sidecar)."""
    if form == "focus-parquet" and output is None:
        raise ReportError("--format focus-parquet writes a file: give --output FILE.parquet")
    if form == "focus-parquet":
        pyarrow_modules()  # before any page is fetched: a missing pyarrow is told at once
    rows = list(focus_rows(costs_buckets(fetcher, since, until), account))
    if output is None:
        return as_csv(rows)
    if form == "focus-parquet":
        write_parquet(rows, output)
    else:
        write_text(output, as_csv(rows))
    described = metadata(rows, datetime.now(UTC), generator())
    write_text(output + ".metadata.json", json.dumps(described, ensure_ascii=False, indent=2) + "\n")
    return ""


def pyarrow_modules() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ReportError("--format focus-parquet needs pyarrow: pip install 'orgproxy[report]'") from None
    return pyarrow, pyarrow.parquet


def write_parquet(rows: list[Row], path: str) -> None:
    """The rows as a Parquet file: decimals as decimal128 at the scale the data needs,
    times as UTC timestamps, Tags as its JSON text."""
    pa, pq = pyarrow_modules()
    decimals = [row[name] for row in rows for name, kind in COLUMNS if kind == DECIMAL and row[name] is not None]
    scale = max((max(0, -int(d.as_tuple().exponent)) for d in decimals), default=1)
    digits = max((len(d.as_tuple().digits) + int(d.as_tuple().exponent) for d in decimals), default=1)
    if scale + max(digits, 1) > 38:
        raise ReportError(f"an amount needs more than the 38 digits Parquet's decimals hold ({scale} decimals)")
    types = {DECIMAL: pa.decimal128(38, scale), DATETIME: pa.timestamp("s", tz="UTC")}
    arrays = []
    for name, kind in COLUMNS:
        values = [row[name] for row in rows]
        if kind in types:
            arrays.append(pa.array(values, type=types[kind]))
        else:
            arrays.append(pa.array([cell(value) for value in values], type=pa.string()))
    table = pa.Table.from_arrays(arrays, names=[name for name, _ in COLUMNS])
    try:
        pq.write_table(table, path)
    except OSError as e:
        raise ReportError(f"{path}: {e}") from None
