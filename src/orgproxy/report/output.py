"""A Report as text for programs and spreadsheets: CSV (one row per day and group) and JSON
(the daily rows and the totals). Beside every name column goes its id column (the ids the
name stood for: several for a rotated key); amounts are written with exactly the digits
their decimal sums have, never through binary floating point. The table for people is
``table``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

from orgproxy.report.aggregate import Group, Report, UnknownName
from orgproxy.report.errors import ReportError
from orgproxy.report.table import as_table


def daily_rows(report: Report) -> Iterable[tuple[tuple[str, Group], dict[str, Any]]]:
    """Every (day, group) and its sums, by day, then group."""
    return sorted(report.days.items(), key=lambda item: (item[0][0], str(item[0][1])))


def plain(value: Any) -> Any:
    """A group's value as written: an unknown name as "unknown" (its id is beside it)."""
    return UnknownName.name if isinstance(value, UnknownName) else value


def columns(report: Report) -> list[str]:
    """The group's columns as written: each --by field, its id column after each name."""
    id_columns = report.id_columns
    return [written for column in report.by for written in (column, id_columns.get(column)) if written]


def labelled(report: Report, group: Group, ids: dict[str, tuple[str, ...]] | None) -> Iterator[tuple[str, Any]]:
    """(column, value) of a group: each --by field, its id column after each name, where
    the ids are a list (several, one or none)."""
    id_columns = report.id_columns
    for column, value in zip(report.by, group):
        yield column, plain(value)
        if column in id_columns:
            yield id_columns[column], list((ids or {}).get(id_columns[column], ()))


def number_text(value: Any) -> str:
    """An amount with every digit and no exponent (``0.30``, ``1234``), a count as it is."""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def as_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    measures = report.measures
    writer.writerow(["date", *columns(report), *measures])
    for (day, group), values in daily_rows(report):
        cells = ["" if v is None else " ".join(v) if isinstance(v, list) else v
                 for _, v in labelled(report, group, report.ids_of((day, group)))]
        writer.writerow([day, *cells, *(number_text(values.get(m, 0)) for m in measures)])
    return out.getvalue()


def as_json(report: Report) -> str:
    """The ids of a name go in ``api_key_ids`` (every one) beside ``api_key_id`` (the one,
    or null where the name stood for several or none), as orgproxy writes merged rows."""
    def entry(group: Group, ids: dict[str, tuple[str, ...]] | None) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for column, value in labelled(report, group, ids):
            if isinstance(value, list):
                fields[column] = value[0] if len(value) == 1 else None
                fields[column + "s"] = value
            else:
                fields[column] = value
        return fields

    rows = [{"date": day, **entry(group, report.ids_of((day, group))), **values}
            for (day, group), values in daily_rows(report)]
    group_ids = report.group_ids()
    totals = [{**entry(group, group_ids.get(group)), **values} for group, values in report.totals()]
    return json_text({"kind": report.kind, "since": report.since.isoformat(), "until": report.until.isoformat(),
                      "by": report.by, "rows": rows, "totals": totals}) + "\n"


def json_text(value: Any, depth: int = 0) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)``, but Decimals as JSON numbers with
    exactly their digits (the standard library has no way to write them)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (dict, list)) and value:
        inner = "\n" + "  " * (depth + 1)
        if isinstance(value, dict):
            parts = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {json_text(v, depth + 1)}" for k, v in value.items()]
            opening, closing = "{", "}"
        else:
            parts = [inner + json_text(v, depth + 1) for v in value]
            opening, closing = "[", "]"
        return opening + ",".join(parts) + "\n" + "  " * depth + closing
    return json.dumps(value, ensure_ascii=False)


def write_text(path: str, text: str) -> None:
    """``text`` into the file ``path`` (--output), as UTF-8 with its own line ends."""
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as e:
        raise ReportError(f"{path}: {e.strerror}") from None


FORMATS: dict[str, Callable[..., str]] = {"table": as_table, "csv": as_csv, "json": as_json}
