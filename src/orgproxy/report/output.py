"""A Report as text: a table of totals for people, CSV (one row per day and group) for
spreadsheets, JSON (rows and totals) for programs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from orgproxy.report.aggregate import Group, Report
from orgproxy.report.csvtext import csv_text
from orgproxy.report.errors import ReportError
from orgproxy.text import escaped, without_surrogates


def daily_rows(report: Report) -> Iterable[tuple[tuple[str, Group], dict[str, float]]]:
    """Every (day, group) and its sums, by day, then group."""
    return sorted(report.days.items(), key=lambda item: (item[0][0], str(item[0][1])))


def as_json(report: Report) -> str:
    rows = [{"date": day, **dict(zip(report.by, group)), **values} for (day, group), values in daily_rows(report)]
    totals = [{**dict(zip(report.by, group)), **values} for group, values in report.totals()]
    return json.dumps({"kind": report.kind, "since": report.since.isoformat(), "until": report.until.isoformat(),
                       "by": report.by, "rows": rows, "totals": totals}, ensure_ascii=False, indent=2) + "\n"


def as_csv(report: Report, raw: bool = False) -> str:
    """One row per day and group; a cell a spreadsheet would run as a formula is
    neutralised (see csvtext), unless ``raw`` (``--csv-raw``)."""
    measures = report.measures
    rows = [["date", *report.by, *measures]]
    for (day, group), values in daily_rows(report):
        rows.append([day, *("" if v is None else v for v in group),
                     *(values.get(m, 0) for m in measures)])  # a float as its repr(): every digit
    return csv_text(rows, formulas_neutralised=not raw)


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _count(value: float) -> str:
    return f"{value:,.0f}"


def as_table(report: Report) -> str:
    measures = report.measures or (["cost"] if report.kind == "costs" else [])
    show = _money if report.kind == "costs" else _count
    lines = [[*report.by, *measures]]
    grand: dict[str, float] = {}
    for group, values in report.totals():
        lines.append([("(none)" if v is None else escaped(str(v))) for v in group]
                     + [show(values.get(m, 0)) for m in measures])
        for m in measures:
            grand[m] = grand.get(m, 0) + values.get(m, 0)
    lines.append(["TOTAL", *[""] * (len(report.by) - 1), *[show(grand.get(m, 0)) for m in measures]])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    numeric = len(report.by)

    def render(line: list[str]) -> str:
        return "  ".join(cell.rjust(w) if i >= numeric else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(line, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    title = (f"{report.kind} from {report.since} to {report.until} (exclusive),"
             f" by {', '.join(report.by)}")
    return "\n".join([title, "", render(lines[0]), rule, *map(render, lines[1:-1]), rule, render(lines[-1])]) + "\n"


def write_text(path: str, text: str) -> None:
    """``text`` into the file ``path`` (--output), as UTF-8 with its own line ends (a lone
    surrogate, which JSON can carry in a name and UTF-8 cannot, as U+FFFD)."""
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(without_surrogates(text))
    except OSError as e:
        raise ReportError(f"{path}: {e.strerror}") from None


FORMATS: dict[str, Callable[[Report], str]] = {"table": as_table, "csv": as_csv, "json": as_json}
