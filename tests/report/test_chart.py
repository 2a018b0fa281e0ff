"""The stacked daily chart: its series, the image files, and its failures as one line."""

from __future__ import annotations

import math
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from orgproxy.report.aggregate import Report
from orgproxy.report.chart import daily_series, write_chart
from orgproxy.report.errors import ReportError
from tests.support.fake_usage import FakeUsage


def month_of_costs() -> Report:
    """FakeUsage's month of costs per key name, as orgproxy would name them."""
    fake = FakeUsage()
    report = Report("costs", fake.since, fake.until, ["api_key_name"])
    for row in fake.costs_rows:
        report.add(row.day.isoformat(), {"api_key_id": row.api_key_id, "api_key_name": row.name},
                   {"cost": Decimal(repr(row.value))})
    return report


def small() -> Report:
    report = Report("usage/completions", date(2026, 10, 1), date(2026, 10, 3), ["api_key_name", "model"])
    for day, (name, model), measures in [
            ("2026-10-01", ("a", "gpt-4o"), {"input_tokens": 10, "output_tokens": 5}),
            ("2026-10-02", ("a", "gpt-4o"), {"input_tokens": 1, "output_tokens": 1}),
            ("2026-10-02", ("b", None), {"input_tokens": 3, "output_tokens": 0, "num_model_requests": 99}),
            ("2026-10-02", ("c", "o3"), {"input_tokens": 2, "output_tokens": 0})]:
        report.add(day, {"api_key_name": name, "model": model}, measures)
    return report


def test_series_are_the_top_groups_by_main_measure_then_other_for_the_rest() -> None:
    days, series = daily_series(small(), top=2)
    assert days == ["2026-10-01", "2026-10-02"]
    assert series == {"a / gpt-4o": [15, 2], "b / (none)": [0, 3], "other": [0, 2]}


def test_there_is_no_other_when_every_group_is_shown() -> None:
    _, series = daily_series(small(), top=3)
    assert list(series) == ["a / gpt-4o", "b / (none)", "c / o3"]


def test_each_day_s_stack_adds_up_to_that_day_s_total() -> None:
    report = month_of_costs()
    days, series = daily_series(report, top=3)
    for i, day in enumerate(days):
        day_total = float(sum(values["cost"] for (d, _), values in report.sums().items() if d == day))
        assert math.isclose(math.fsum(values[i] for values in series.values()), day_total, rel_tol=1e-9), day


def test_png_starts_with_the_png_signature(tmp_path: Path) -> None:
    chart = tmp_path / "out.png"
    write_chart(small(), str(chart), top=8)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["missing-directory/out.svg", "out.unknown-format"])
def test_a_chart_that_cannot_be_written_is_a_report_error_naming_the_file(tmp_path: Path, name: str) -> None:
    path = str(tmp_path / name)
    with pytest.raises(ReportError) as raised:
        write_chart(small(), path, top=8)
    assert str(raised.value).startswith(f"--chart {path}: ")
    assert "\n" not in str(raised.value)


def test_without_matplotlib_the_chart_is_a_report_error_saying_what_to_install(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with pytest.raises(ReportError) as raised:
        write_chart(small(), str(tmp_path / "out.svg"), top=8)
    assert "pip install 'orgproxy[report]'" in str(raised.value)
    assert not (tmp_path / "out.svg").exists()
