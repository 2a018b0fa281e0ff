"""``orgproxy-report costs --format focus`` as a command (its ``main``, in this process),
over FakeUsage's month of OpenAI costs and the analytics month of Anthropic's on a real
socket: FOCUS 1.4 by default and 1.2 on request, for one vendor or both in one file, the
billing accounts, the files it writes (CSV, Parquet in row groups, the metadata sidecar,
nothing half-written), and its one-line errors."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow
import pyarrow.parquet
import pytest

from orgproxy.report import focus_write
from tests.report.conftest import Ran, Run
from tests.support.analytics_month import MONTH as ANTHROPIC_MONTH
from tests.support.analytics_month import ME, ORGANIZATION, AnalyticsNamesBesideIds
from tests.support.fake_analytics import COST
from tests.support.fake_usage import ALIASES, COSTS, FakeUsage
from tests.support.focus14_rules import assert_focus_1_4_rules
from tests.support.focus_rules import MANDATORY, assert_focus_rules, read
from tests.support.tcp_upstream import FakeUpstream, reply
from tests.support.usage_expected import MONTH, assert_one_error_line

ORG = ("--billing-account-id", "org-EXAMPLE123", "--billing-account-name", "Example Corp")
BOTH = ("--provider", "all", "--billing-account-id", "openai=org-EXAMPLE123", "--billing-account-name",
        "Example Corp")


def one_error_line(ran: Ran) -> str:
    return assert_one_error_line(ran.code, ran.out, ran.err)


def openai_cents_by_day(usage: FakeUsage) -> dict[str, Decimal]:
    want: dict[str, Decimal] = {}
    for cost in usage.costs_rows:
        want[cost.day.isoformat()] = want.get(cost.day.isoformat(), Decimal()) + Decimal(json.dumps(cost.value))
    return want


def billed_by_day(rows: list[dict[str, str | None]], vendor: str) -> dict[str, Decimal]:
    got: dict[str, Decimal] = {}
    for row in rows:
        if row.get("ServiceProviderName", row.get("ProviderName")) == vendor:
            day = row["ChargePeriodStart"][:10]  # type: ignore[index]
            got[day] = got.get(day, Decimal()) + Decimal(row["BilledCost"])  # type: ignore[arg-type]
    return got


def test_the_month_is_focus_1_4_by_default_and_adds_up_to_the_pages_amounts(
        report: Run, upstream: FakeUpstream, usage: FakeUsage) -> None:
    rows = assert_focus_1_4_rules(report("costs", *MONTH, "--format", "focus", *ORG, "--proxy", upstream.url).ok())
    assert {frozenset(s.group_by) for s in usage.served_for(COSTS)} == {
        frozenset({"project_id", "api_key_id", "line_item"})}
    assert len(rows) == len(usage.costs_rows), "one row per day, key, project and line item"
    assert billed_by_day(rows, "OpenAI") == openai_cents_by_day(usage), "exact, day by day"
    checkout = {r["ResourceId"] for r in rows if r["ResourceName"] == "checkout"}
    assert checkout == {"key_3f9a1c0d7e2b4a01", "key_8b2e6f4a1d9c3e02"}, "rotated keys: two resources, one name"
    assert {r["ResourceName"] for r in rows if r["ResourceId"] not in ALIASES} == {None}


def test_focus_version_1_2_is_the_export_as_it_was(report: Run, upstream: FakeUpstream, usage: FakeUsage) -> None:
    rows = assert_focus_rules(report("costs", *MONTH, "--format", "focus", "--focus-version", "1.2", *ORG,
                                     "--proxy", upstream.url).ok())
    assert len(MANDATORY) == 21 and len(rows) == len(usage.costs_rows)
    assert billed_by_day(rows, "OpenAI") == openai_cents_by_day(usage)


def test_anthropic_s_month_comes_from_the_analytics_cost_endpoint_by_key_and_charge(
        report: Run, upstream: FakeUpstream, analytics: AnalyticsNamesBesideIds) -> None:
    analytics.page_size = 300  # the month on several pages
    rows = assert_focus_1_4_rules(report("costs", "--provider", "anthropic", *MONTH, "--format", "focus",
                                         "--proxy", upstream.url, key=None).ok())
    asked = [pairs for path, pairs, _ in analytics.asked if path == COST]
    assert len(asked) >= 2
    assert [v for k, v in asked[0] if k == "group_by[]"] == [
        "api_key_id", "workspace_id", "model", "cost_type", "token_type", "service_tier", "context_window"]
    assert ("time_bucket_width", "1d") in asked[0]
    # The organization from /v1/organizations/me, as nobody named it.
    assert {(r["BillingAccountId"], r["BillingAccountName"]) for r in rows} == {
        (ORGANIZATION["id"], ORGANIZATION["name"])}
    want: dict[str, Decimal] = {}
    for entry in ANTHROPIC_MONTH.costs:
        want[entry.day] = want.get(entry.day, Decimal()) + Decimal(entry.amount) / 100
    assert billed_by_day(rows, "Anthropic") == want, "cents / 100, exact, day by day"
    assert {r["ResourceName"] for r in rows if r["ResourceId"] is not None} == {
        "billing-batch", "ci-deploy-bot", "legacy-default-workspace-key", None}


def test_all_is_one_file_of_both_vendors_each_in_its_own_billing_account(
        report: Run, upstream: FakeUpstream, usage: FakeUsage, analytics: AnalyticsNamesBesideIds) -> None:
    text = report("costs", *MONTH, "--format", "focus", *BOTH, "--proxy", upstream.url).ok()
    rows = assert_focus_1_4_rules(text)
    assert text.count("\nAllocatedMethodDetails") == 0 and text.startswith("AllocatedMethodDetails,")
    accounts = {(r["ServiceProviderName"], r["BillingAccountId"], r["BillingAccountName"]) for r in rows}
    assert accounts == {("OpenAI", "org-EXAMPLE123", "Example Corp"), ("Anthropic", ORGANIZATION["id"], "Example Corp")}
    assert billed_by_day(rows, "OpenAI") == openai_cents_by_day(usage)
    assert sum(billed_by_day(rows, "Anthropic").values()) == sum(
        Decimal(e.amount) for e in ANTHROPIC_MONTH.costs) / 100
    given = report("costs", *MONTH, "--format", "focus", "--provider", "all", "--billing-account-id",
                   "openai=org-EXAMPLE123,anthropic=org-given", "--billing-account-name",
                   "openai=Example Corp,anthropic=Example, Inc.", "--proxy", upstream.url).ok()
    assert {(r["BillingAccountId"], r["BillingAccountName"]) for r in read(given)[1]
            if r["ServiceProviderName"] == "Anthropic"} == {("org-given", "Example, Inc.")}


def test_output_writes_the_csv_and_its_1_4_metadata_beside_it(
        report: Run, upstream: FakeUpstream, usage: FakeUsage, analytics: AnalyticsNamesBesideIds,
        tmp_path: Path) -> None:
    target = tmp_path / "costs.csv"
    assert report("costs", *MONTH, "--format", "focus", *BOTH, "--proxy", upstream.url, "--output",
                  str(target)).ok() == ""
    header, rows = read(target.read_text(encoding="utf-8"))
    described = json.loads((tmp_path / "costs.csv.metadata.json").read_text(encoding="utf-8"))
    assert described["DataGenerator"] == {"DataGenerator": "orgproxy-report"}
    (instance,) = described["DatasetInstance"]
    assert instance["FocusDatasetId"] == "CostAndUsage" and len(instance["DatasetInstanceId"]) == 36
    (recency,) = described["Recency"]
    assert recency["DatasetInstanceId"] == instance["DatasetInstanceId"]
    sectors = recency["TimeSectors"]
    assert [s["TimeSectorStart"][:10] for s in sectors] == sorted({r["ChargePeriodStart"][:10] for r in rows})
    assert len(sectors) == 31 and all(s["TimeSectorComplete"] is (datetime.fromisoformat(
        s["TimeSectorEnd"]) + timedelta(days=30) <= datetime.now(UTC)) for s in sectors)
    schema = described["Schema"]
    assert (schema["FocusVersion"], schema["DatasetInstanceId"]) == ("1.4", instance["DatasetInstanceId"])
    created = datetime.strptime(schema["CreationDate"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=10)
    assert [c["ColumnName"] for c in schema["ColumnDefinition"]] == header
    kinds = {c["ColumnName"]: c["DataType"] for c in schema["ColumnDefinition"]}
    assert (kinds["BilledCost"], kinds["ChargePeriodStart"], kinds["Tags"], kinds["x_SourceAmount"]) == (
        "DECIMAL", "DATETIME", "JSON", "DECIMAL")
    # The same vendors and accounts, the same dataset instance: next month continues it.
    report("costs", *MONTH, "--format", "focus", *BOTH, "--proxy", upstream.url, "--output",
           str(tmp_path / "again.csv")).ok()
    again = json.loads((tmp_path / "again.csv.metadata.json").read_text(encoding="utf-8"))
    assert again["DatasetInstance"] == described["DatasetInstance"]


def test_1_2_metadata_is_the_schema_alone_as_before(report: Run, upstream: FakeUpstream, usage: FakeUsage,
                                                    tmp_path: Path) -> None:
    target = tmp_path / "costs.csv"
    report("costs", *MONTH, "--format", "focus", "--focus-version", "1.2", *ORG, "--proxy", upstream.url,
           "--output", str(target)).ok()
    header, rows = read(target.read_text(encoding="utf-8"))
    described = json.loads((tmp_path / "costs.csv.metadata.json").read_text(encoding="utf-8"))
    assert set(described) == {"SchemaId", "FocusVersion", "CreationDate", "DataGenerator", "ColumnDefinition"}
    assert described["FocusVersion"] == "1.2" and described["DataGenerator"].startswith("orgproxy-report ")
    assert described["SchemaId"] == "e1104655-7afa-5d2e-ab95-e5464f1ed3b6", "the same columns, the same id"
    assert [c["ColumnName"] for c in described["ColumnDefinition"]] == header
    longest = max(len(r["ChargeDescription"]) for r in rows)  # type: ignore[arg-type]
    assert next(c for c in described["ColumnDefinition"] if c["ColumnName"] == "ChargeDescription")[
        "StringMaxLength"] == longest


def test_parquet_holds_the_same_rows_in_row_groups_with_decimal_and_timestamp_types(
        report: Run, upstream: FakeUpstream, usage: FakeUsage, analytics: AnalyticsNamesBesideIds,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv_text = report("costs", *MONTH, "--format", "focus", *BOTH, "--proxy", upstream.url).ok()
    monkeypatch.setattr(focus_write, "GROUP_ROWS", 500)
    target = tmp_path / "costs.parquet"
    report("costs", *MONTH, "--format", "focus-parquet", *BOTH, "--proxy", upstream.url, "--output",
           str(target)).ok()
    parquet = pyarrow.parquet.ParquetFile(target)
    header, rows = read(csv_text)
    assert parquet.metadata.num_row_groups == -(-len(rows) // 500) > 2
    table = parquet.read()
    assert table.column_names == header and table.num_rows == len(rows)
    assert pyarrow.types.is_decimal(table.schema.field("BilledCost").type)
    moment = table.schema.field("ChargePeriodStart").type  # Parquet keeps seconds as milliseconds
    assert pyarrow.types.is_timestamp(moment) and moment.tz == "UTC"
    assert [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in table.column("ChargePeriodStart").to_pylist()] == [
        r["ChargePeriodStart"] for r in rows]
    for column in ("BilledCost", "ListCost", "ListUnitPrice", "PricingQuantity", "x_SourceAmount"):
        assert [None if v is None else v.normalize() for v in table.column(column).to_pylist()] == [
            None if r[column] is None else Decimal(r[column]).normalize() for r in rows], column
    assert table.column("ResourceName").to_pylist() == [r["ResourceName"] for r in rows]
    described = json.loads((tmp_path / "costs.parquet.metadata.json").read_text(encoding="utf-8"))
    billed = next(c for c in described["Schema"]["ColumnDefinition"] if c["ColumnName"] == "BilledCost")
    assert (billed["NumericPrecision"], billed["NumberScale"]) == (38, 24)
    assert not list(tmp_path.glob(".*partial")), "no temporary file left behind"


def test_an_amount_parquet_cannot_hold_exactly_is_refused_not_rounded(report: Run, upstream: FakeUpstream,
                                                                      tmp_path: Path) -> None:
    day = 1790812800
    upstream.on(COSTS, reply(body={"data": [{"start_time": day, "end_time": day + 86400, "results": [
        {"amount": {"value": "0.1234567890123456789012345", "currency": "usd"}, "line_item": "x"}]}],
        "has_more": False}))
    ran = report("costs", "--since", "2026-10-01", "--until", "2026-10-02", "--format", "focus-parquet", *ORG,
                 "--proxy", upstream.url, "--output", str(tmp_path / "x.parquet"))
    assert "more than the 24 decimal places" in one_error_line(ran)
    assert list(tmp_path.iterdir()) == [], "no file, whole or partial"


def test_a_failure_part_way_leaves_no_file_and_prints_nothing(report: Run, upstream: FakeUpstream,
                                                              usage: FakeUsage, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", "sk-ant-admin01-x")
    upstream.on(COST, reply(401, {"type": "error", "error": {"type": "authentication_error",
                                                              "message": "invalid x-api-key"}}))
    upstream.on(ME, reply(body=ORGANIZATION))
    target = tmp_path / "costs.csv"
    ran = report("costs", *MONTH, "--format", "focus", *BOTH, "--proxy", upstream.url, "--output", str(target))
    assert f"{COST}: 401: invalid x-api-key" in one_error_line(ran)
    assert usage.served_for(COSTS), "OpenAI's part was fetched and written before Anthropic's failed"
    assert list(tmp_path.iterdir()) == []
    printed = report("costs", *MONTH, "--format", "focus", "--provider", "anthropic", "--proxy", upstream.url)
    assert printed.out == "" and printed.code == 1, "not even the header"


def test_without_pyarrow_parquet_is_one_line_and_nothing_is_fetched(
        report: Run, upstream: FakeUpstream, usage: FakeUsage, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # an import of it fails, as where it is not installed
    ran = report("costs", *MONTH, "--format", "focus-parquet", *ORG, "--proxy", upstream.url,
                 "--output", str(tmp_path / "x.parquet"))
    assert "needs pyarrow: pip install 'orgproxy[report]'" in one_error_line(ran)
    assert not usage.served_for(COSTS) and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "message"), [
    (("--billing-account-id", "org-1"), "needs --billing-account-id and --billing-account-name"),
    (("--billing-account-name", "Example"), "needs --billing-account-id and --billing-account-name"),
    ((*ORG, "--chart", "x.svg"), "--chart does not go with --format focus"),
    (("--provider", "all", "--billing-account-id", "org-1", "--billing-account-name", "X"),
     "--billing-account-id: with --provider all, give openai=...,anthropic=..."),
    (("--provider", "all", "--billing-account-id", "openai=a,openai=b", "--billing-account-name", "X"),
     "is not openai=... or anthropic=... (each once)"),
    (("--provider", "anthropic", "--legacy"), "not --legacy"),
    ((*ORG, "--focus-version", "1.3"), "invalid choice: '1.3'"),
])
def test_focus_without_what_it_needs_is_one_line_and_nothing_is_fetched(
        report: Run, upstream: FakeUpstream, usage: FakeUsage, args: tuple[str, ...], message: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", "sk-ant-admin01-x")
    if "1.3" in args:
        with pytest.raises(SystemExit):
            report("costs", *MONTH, "--format", "focus", *args, "--proxy", upstream.url)
        assert message in capsys.readouterr().err
    else:
        assert message in one_error_line(report("costs", *MONTH, "--format", "focus", *args, "--proxy", upstream.url))
    assert upstream.received == []


def test_an_output_file_that_cannot_be_written_is_one_line(report: Run, upstream: FakeUpstream, usage: FakeUsage,
                                                            tmp_path: Path) -> None:
    ran = report("costs", *MONTH, "--format", "focus", *ORG, "--proxy", upstream.url,
                 "--output", str(tmp_path / "no-such-dir" / "costs.csv"))
    assert "No such file or directory" in one_error_line(ran)


def test_output_works_for_the_other_formats_too(report: Run, upstream: FakeUpstream, usage: FakeUsage,
                                                tmp_path: Path) -> None:
    printed = report("costs", *MONTH, "--format", "csv", "--proxy", upstream.url).ok()
    target = tmp_path / "costs.csv"
    assert report("costs", *MONTH, "--format", "csv", "--proxy", upstream.url, "--output", str(target)).ok() == ""
    assert target.read_text(encoding="utf-8") == printed
    assert not (tmp_path / "costs.csv.metadata.json").exists(), "a sidecar only for FOCUS"
