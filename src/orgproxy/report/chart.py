"""A stacked daily chart of a Report, with matplotlib (the `report` extra), imported only
when a chart is asked for: it pulls in numpy, which the rest of the report does without."""

from __future__ import annotations

from datetime import date

from orgproxy.report.aggregate import Group, Report
from orgproxy.report.errors import ReportError
from orgproxy.text import escaped


def label(group: Group) -> str:
    return " / ".join("(none)" if v is None else escaped(str(v)) for v in group)


def daily_series(report: Report, top: int) -> tuple[list[str], dict[str, list[float]]]:
    """The days, and the main measure per day for each of the ``top`` largest groups and,
    if there are more, "other" for the rest."""
    ranked = [group for group, _ in report.totals()]
    shown = ranked[:top]
    sums = report.sums()
    days = sorted({day for day, _ in sums})
    series: dict[str, list[float]] = {label(g): [0.0] * len(days) for g in shown}
    if len(ranked) > top:
        series["other"] = [0.0] * len(days)
    index = {day: i for i, day in enumerate(days)}
    for (day, group), values in sums.items():
        name = label(group) if group in shown else "other"
        series[name][index[day]] += float(report.main_measure(group, values))  # a chart needs no exact cent
    return days, series


def write_chart(report: Report, path: str, top: int) -> None:
    """A stacked daily chart of the main measure per group: the top ``top`` and "other"."""
    try:
        import matplotlib
    except ImportError:
        raise ReportError("--chart needs matplotlib: pip install 'orgproxy[report]'") from None
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: names can be searched
    import matplotlib.pyplot as plt
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    days, series = daily_series(report, top)
    figure, axes = plt.subplots(figsize=(11, 5.5), layout="constrained")
    x = [date.fromisoformat(d) for d in days]
    bottom = [0.0] * len(days)
    for name, values in series.items():  # one stacked bar per day
        axes.bar(x, values, bottom=bottom, label=name, width=0.85)
        bottom = [b + v for b, v in zip(bottom, values)]
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.set_ylabel("cost (USD)" if report.kind == "costs" else "tokens (input + output)")
    axes.set_title(f"{report.kind} per {', '.join(report.by)}, {report.since} to {report.until}")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    axes.grid(axis="y", alpha=0.3)
    try:
        figure.savefig(path)
    except (OSError, ValueError) as e:
        raise ReportError(f"--chart {path}: {e}") from None
    finally:
        plt.close(figure)
