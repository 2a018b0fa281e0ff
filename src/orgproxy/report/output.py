"""A Report as text for programs and spreadsheets: CSV (one row per day and group) and JSON
(the daily rows and the totals). Beside every name column goes its id column (the ids the
name stood for: several for a rotated key); amounts are written with exactly the digits
their decimal sums have, never through binary floating point. The table for people is
``table``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, TextIO

from orgproxy.report.aggregate import Group, Report, UnknownName
from orgproxy.report.csvtext import CsvWriter
from orgproxy.report.errors import ReportError
from orgproxy.text import without_surrogates


def columns(report: Report) -> list[str]:
    """The group's columns as written: each --by field, its id column after each name."""
    id_columns = report.id_columns
    return [written for column in report.by for written in (column, id_columns.get(column)) if written]


def plain(value: Any) -> Any:
    """A group's value as written: an unknown name as "unknown" (its id is beside it)."""
    return UnknownName.name if isinstance(value, UnknownName) else value


def labelled(report: Report, group: Group, ids: dict[str, tuple[str, ...]]) -> Iterator[tuple[str, Any]]:
    """(column, value) of a group: each --by field, its id column after each name, where
    the ids are a list (several, one or none)."""
    id_columns = report.id_columns
    for column, value in zip(report.by, group):
        yield column, plain(value)
        if column in id_columns:
            yield id_columns[column], list(ids.get(id_columns[column], ()))


def number_text(value: Any) -> str:
    """An amount with every digit and no exponent (``0.30``, ``1234``), a count as it is."""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def as_csv(report: Report, out: TextIO, raw: bool = False) -> None:
    """One row per day and group, written as it is made; a cell a spreadsheet would run as
    a formula is neutralised (see csvtext), unless ``raw`` (``--csv-raw``)."""
    writer = CsvWriter(out, formulas_neutralised=not raw)
    measures = report.measures
    writer.writerow(["date", *columns(report), *measures])
    for day, group, values, ids in report.rows():
        cells = ["" if v is None else " ".join(v) if isinstance(v, list) else v
                 for _, v in labelled(report, group, ids)]
        writer.writerow([day, *cells, *(number_text(values.get(m, 0)) for m in measures)])


def json_entry(report: Report, group: Group, ids: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """A group's fields for JSON: the ids of a name in ``api_key_ids`` (every one) beside
    ``api_key_id`` (the one, or null where the name stood for several or none), as
    orgproxy writes merged rows."""
    fields: dict[str, Any] = {}
    for column, value in labelled(report, group, ids):
        if isinstance(value, list):
            fields[column] = value[0] if len(value) == 1 else None
            fields[column + "s"] = value
        else:
            fields[column] = value
    return fields


def as_json(report: Report, out: TextIO, raw: bool = False) -> None:
    """The header, the daily rows and the totals, as ``json.dumps(indent=2)`` lays them
    out, each row written as it is made (a lone surrogate, which UTF-8 cannot hold, as
    U+FFFD)."""
    def put(text: str) -> None:
        out.write(without_surrogates(text))

    put("{\n")
    for name, value in (("kind", report.kind), ("since", report.since.isoformat()),
                        ("until", report.until.isoformat()), ("by", report.by)):
        put(f'  "{name}": {json_text(value, 1)},\n')
    group_ids = report.group_ids()
    for name, entries in (("rows", ({"date": day, **json_entry(report, group, ids), **values}
                                    for day, group, values, ids in report.rows())),
                          ("totals", ({**json_entry(report, group, group_ids.get(group, {})), **values}
                                      for group, values in report.totals()))):
        put(f'  "{name}": [')
        empty = True
        for entry in entries:
            put(("\n" if empty else ",\n") + "    " + json_text(entry, 2))
            empty = False
        put("]" if empty else "\n  ]")
        put(",\n" if name == "rows" else "\n")
    put("}\n")


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
    """``text`` into the file ``path`` (--output), as UTF-8 with its own line ends (a lone
    surrogate, which JSON can carry in a name and UTF-8 cannot, as U+FFFD)."""
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(without_surrogates(text))
    except OSError as e:
        raise ReportError(f"{path}: {e.strerror}") from None


def write_file(path: str, write: Callable[[TextIO], None]) -> None:
    """What ``write`` writes, into the file ``path`` (--output), as UTF-8."""
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            write(f)
    except OSError as e:
        raise ReportError(f"{path}: {e.strerror}") from None


# Each format's writer (``raw``: --csv-raw); the table is small enough to be made whole
# (table.as_table).
WRITERS: dict[str, Callable[[Report, TextIO, bool], None]] = {"csv": as_csv, "json": as_json}
FORMATS = ("table", *WRITERS)
