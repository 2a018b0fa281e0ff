"""``orgproxy-report costs --format focus`` (or ``focus-parquet``): each vendor's costs for
the range, asked of orgproxy grouped by id (so that every row keeps its key id and what
orgproxy adds beside it) and by every dimension a price depends on, read with exact
decimals, and written as FOCUS (1.4 unless told 1.2) page by page: one file for all the
vendors asked for, with its metadata sidecar ``FILE.metadata.json`` when written to a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TextIO

from orgproxy.report.calls import Calls
from orgproxy.report.collect import cycles_not_collected
from orgproxy.report.errors import ReportError
from orgproxy.report.fetch import Fetcher
from orgproxy.report.focus import COLUMNS, ROW_OF
from orgproxy.report.focus_anthropic import GROUP_BY as ANTHROPIC_GROUP_BY
from orgproxy.report.focus_anthropic import anthropic_charges
from orgproxy.report.focus_charge import OPENAI, BillingAccount, Charge, Vendor
from orgproxy.report.focus_metadata import Written, metadata
from orgproxy.report.focus_openai import GROUP_BY as OPENAI_GROUP_BY
from orgproxy.report.focus_openai import openai_charges
from orgproxy.report.focus_write import PRECISION, SCALE, CsvFile, CsvSink, ParquetFile, Sink
from orgproxy.report.output import write_text
from orgproxy.version import installed_version

FORMATS = ("focus", "focus-parquet")


@dataclass(frozen=True)
class Source:
    """One vendor's costs: who, through which fetcher, invoiced to which account."""

    vendor: Vendor
    fetcher: Fetcher
    account: BillingAccount


def charges(sources: Sequence[Source], since: date, until: date) -> Iterator[Charge]:
    """Every vendor's charges, vendor after vendor, in page order, a page at a time."""
    for source in sources:
        api, progress = source.fetcher.api, source.fetcher.progress
        vendor_openai = source.vendor is OPENAI
        group = list(OPENAI_GROUP_BY if vendor_openai else ANTHROPIC_GROUP_BY)
        read = openai_charges if vendor_openai else anthropic_charges
        calls = Calls(since, until, api.max_days("costs"), api.PAGES_BY_DAYS)
        for start, end in calls:
            progress.covering(api.name, calls.days_done, calls.days)
            rows = 0
            for charge in read(source.fetcher.buckets(api.path("costs"), api.window_query(start, end, group)),
                               source.account):
                rows += 1
                yield charge
            calls.brought(start, end, rows)
        progress.covering(api.name, calls.days_done, calls.days)


def sink_for(form: str, focus_version: str, output: str | None, stdout: TextIO) -> Sink:
    columns = COLUMNS[focus_version]
    if form == "focus-parquet":
        if output is None:
            raise ReportError("--format focus-parquet writes a file: give --output FILE.parquet")
        return ParquetFile(output, columns)
    names = tuple(name for name, _ in columns)
    return CsvFile(output, names) if output is not None else CsvSink(stdout, names)


def export(sources: Sequence[Source], since: date, until: date, focus_version: str, form: str,
           output: str | None, stdout: TextIO) -> None:
    """The FOCUS rows of every source into ``output`` (and its sidecar), or CSV on ``stdout``."""
    sink = sink_for(form, focus_version, output, stdout)  # before any call: a missing pyarrow is told at once
    to_row = ROW_OF[focus_version]
    written = Written(decimal_scale=(PRECISION, SCALE) if form == "focus-parquet" else None)
    try:
        with cycles_not_collected():
            for charge in charges(sources, since, until):
                sink.write(to_row(charge))
                written.saw(charge.vendor, charge.account, charge.description)
        sink.close()
    except BaseException:
        sink.abort()
        raise
    if output is not None:
        days = [since + timedelta(days=n) for n in range((until - since).days)]
        described = metadata(focus_version, written, datetime.now(UTC), installed_version(), days)
        write_text(output + ".metadata.json", json.dumps(described, ensure_ascii=False, indent=2) + "\n")
