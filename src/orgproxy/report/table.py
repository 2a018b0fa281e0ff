"""A Report as a table for people: totals per group, largest first, and a TOTAL line; costs
in dollars and cents, counts with thousands separators.

It fits ``width`` columns (120 unless told otherwise; none with --wide): the group's
columns always, then as many measures as fit, the ones its rows are ranked by first (cost;
tokens in and out), then those with the largest totals (a usage report has a dozen
measures, most of them small), shown in their own order, with a last note naming the
measures left out. Names too long to fit are cut with "…". What
the providers' consoles let people type into a name (control characters, terminal escape
sequences) is shown escaped, never sent to the terminal as it is.
"""

from __future__ import annotations

import textwrap
from typing import Any

from orgproxy.report.aggregate import Report
from orgproxy.text import escaped

WIDTH = 120
GAP = "  "
MIN_NAME = 12  # the narrowest a name column is cut to


def shown(value: Any) -> str:
    """A group's value for a terminal: "(none)" for null, anything unprintable escaped."""
    return "(none)" if value is None else escaped(str(value))


def money(value: Any) -> str:
    return f"${value:,.2f}"


def count(value: Any) -> str:
    return f"{value:,.0f}"


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def as_table(report: Report, width: int | None = WIDTH) -> str:
    measures = report.measures or (["cost"] if report.kind == "costs" else [])
    show = money if report.kind == "costs" else count
    groups = len(report.by)
    totals = report.totals()
    grand: dict[str, Any] = {}
    for _, values in totals:
        for m in measures:
            grand[m] = grand.get(m, 0) + values.get(m, 0)
    lines = [[*report.by, *measures]]
    for group, values in totals:
        lines.append([shown(v) for v in group] + [show(values.get(m, 0)) for m in measures])
    lines.append(["TOTAL", *[""] * (groups - 1), *[show(grand.get(m, 0)) for m in measures]])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    first = [m for api in report.apis.values() for m in api.MAIN_MEASURES]
    kept, left_out = fitting(widths, groups, measures, grand, first, width)
    name_widths = narrowed(widths[:groups], sum(widths[groups + i] + len(GAP) for i in kept), width)
    columns = list(range(groups)) + [groups + i for i in kept]
    widths = name_widths + widths[groups:]

    def render(line: list[str]) -> str:
        cells = (cut(line[i], widths[i]) for i in columns)
        return GAP.join(text.rjust(widths[i]) if i >= groups else text.ljust(widths[i])
                        for i, text in zip(columns, cells)).rstrip()

    rule = GAP.join("-" * widths[i] for i in columns)
    title = f"{report.kind} from {report.since} to {report.until} (exclusive), by {', '.join(report.by)}"
    out = [title, "", render(lines[0]), rule, *map(render, lines[1:-1]), rule, render(lines[-1])]
    if left_out:
        note = f"(not shown: {', '.join(left_out)}; --wide shows every column)"
        out.extend(textwrap.wrap(note, width or WIDTH, break_on_hyphens=False))
    return "\n".join(out) + "\n"


def fitting(widths: list[int], groups: int, measures: list[str], grand: dict[str, Any], first: list[str],
            width: int | None) -> tuple[list[int], list[str]]:
    """The measures shown (their indexes, in order) and those left out, so that the line
    fits ``width`` (None: all): those named in ``first``, in that order, then the others,
    largest total first; the group's columns come first, however wide."""
    if width is None:
        return list(range(len(measures))), []
    used = sum(widths[:groups]) + len(GAP) * (groups - 1)
    kept: list[int] = []

    def priority(i: int) -> tuple[int, Any]:
        name = measures[i]
        return (first.index(name), 0) if name in first else (len(first), -grand.get(name, 0))

    for i in sorted(range(len(measures)), key=priority):
        needed = len(GAP) + widths[groups + i]
        if used + needed <= width or not kept:  # one measure at least: a table of names says nothing
            kept.append(i)
            used += needed
    return sorted(kept), [m for i, m in enumerate(measures) if i not in kept]


def narrowed(widths: list[int], measures_width: int, width: int | None) -> list[int]:
    """The group's column widths, the widest cut first (to MIN_NAME at most) until the line
    fits ``width``."""
    widths = list(widths)
    if width is None:
        return widths
    while sum(widths) + len(GAP) * (len(widths) - 1) + measures_width > width:
        widest = max(range(len(widths)), key=lambda i: widths[i])
        if widths[widest] <= MIN_NAME:
            break
        widths[widest] -= 1
    return widths
