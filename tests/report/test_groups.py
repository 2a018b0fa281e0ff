"""What each endpoint can be grouped by: the spec's group_by values, the names beside the
ids, the default, and a refusal that lists them."""

from __future__ import annotations

import json

import pytest

from orgproxy.report.errors import ReportError
from orgproxy.report.groups import (
    GROUP_BY,
    asked_of,
    checked_groups,
    checked_groups_across,
    default_group,
    describe,
    valid_groups,
)
from tests.conftest import ROOT

# Taken from OpenAI's spec: each endpoint's group_by enum (see the fixtures' README).
SPEC_GROUP_BY = json.loads((ROOT / "tests" / "fixtures" / "openai-admin-api" / "group_by.json").read_text())


def test_the_table_is_the_specs() -> None:
    assert {kind: list(values) for kind, values in GROUP_BY.items()} == SPEC_GROUP_BY


def test_every_id_can_also_be_grouped_by_its_name() -> None:
    assert valid_groups("costs") == ("project_name", "api_key_name", "project_id", "line_item", "api_key_id")
    assert valid_groups("usage/vector_stores") == ("project_name", "project_id")


@pytest.mark.parametrize(("kind", "default"), [
    ("costs", "api_key_name"), ("usage/completions", "api_key_name"),
    ("usage/code_interpreter_sessions", "project_name"), ("usage/vector_stores", "project_name"),
    ("usage/decisions", "api_key_name"),  # newer than the spec: asked for as it is
])
def test_the_default_is_the_keys_name_where_the_endpoint_groups_by_key(kind: str, default: str) -> None:
    assert default_group(kind) == default
    assert checked_groups(kind, None) == [default]


def test_valid_groups_are_taken_in_the_order_given() -> None:
    assert checked_groups("usage/completions", " api_key_name, model ,batch") == ["api_key_name", "model", "batch"]


@pytest.mark.parametrize(("kind", "by", "wrong"), [
    ("costs", "model", "model"), ("costs", "api_key_name,user_name,model", "user_name, model"),
    ("usage/vector_stores", "api_key_name", "api_key_name"), ("costs", " , ", "nothing"),
])
def test_a_group_the_endpoint_does_not_accept_is_refused_listing_the_valid_ones(kind: str, by: str,
                                                                                 wrong: str) -> None:
    with pytest.raises(ReportError) as refused:
        checked_groups(kind, by)
    assert str(refused.value) == f"{kind} cannot be grouped by {wrong}; --by takes {describe(kind)}"
    assert f"(default: {default_group(kind)})" in str(refused.value)


def test_an_endpoint_newer_than_the_spec_is_not_checked() -> None:
    assert checked_groups("usage/decisions", "api_key_name,outcome") == ["api_key_name", "outcome"]
    with pytest.raises(ReportError, match="--by names no field"):
        checked_groups("usage/decisions", ",")


def test_anthropic_s_legacy_reports_take_their_own_group_by_values_with_names_first() -> None:
    # Anthropic's Admin API reference: the messages usage report's and the cost report's group_by[].
    assert valid_groups("usage/messages", "anthropic-legacy") == (
        "api_key_name", "workspace_name", "account_name", "service_account_name", "api_key_id", "workspace_id",
        "model", "service_tier", "context_window", "inference_geo", "speed", "account_id", "service_account_id")
    assert valid_groups("costs", "anthropic-legacy") == ("workspace_name", "workspace_id", "description")
    # Its cost report has no key dimension: the default is the workspace's name.
    assert (default_group("costs", "anthropic-legacy"), default_group("usage/messages", "anthropic-legacy")) == (
        "workspace_name", "api_key_name")
    assert checked_groups("costs", "workspace_name,description", "anthropic-legacy") == [
        "workspace_name", "description"]
    with pytest.raises(ReportError) as refused:
        checked_groups("costs", "api_key_name", "anthropic-legacy")
    assert str(refused.value) == ("Anthropic's legacy costs cannot be grouped by api_key_name; --by takes"
                                  " workspace_name, workspace_id, description (default: workspace_name)")


def test_anthropic_s_analytics_api_groups_by_key_and_every_scalar_dimension_of_a_row() -> None:
    # Every key of a row's group in the reference's examples but the actor (an object).
    example = json.loads((ROOT / "tests" / "fixtures" / "anthropic-admin-api" / "analytics" /
                          "03-cost-by-api-key-workspace-cost-type.json").read_text())
    dimensions = set(example["data"][0]["group"]) - {"actor"}
    assert set(valid_groups("costs", "anthropic")) == dimensions | {"api_key_name", "workspace_name"}
    assert set(valid_groups("usage", "anthropic")) == dimensions - {"cost_type", "token_type"} | {
        "api_key_name", "workspace_name"}
    assert default_group("costs", "anthropic") == default_group("usage", "anthropic") == "api_key_name"


def test_several_providers_take_a_field_any_of_them_groups_by_and_each_is_asked_for_its_own() -> None:
    kinds = {"openai": "costs", "anthropic": "costs"}
    assert checked_groups_across(kinds, None) == ["api_key_name"]
    assert checked_groups_across(kinds, "api_key_name,project_name,workspace_name") == [
        "api_key_name", "project_name", "workspace_name"]
    assert asked_of("costs", "openai", ["api_key_name", "project_name", "workspace_name"]) == [
        "api_key_name", "project_name"]
    assert asked_of("costs", "anthropic", ["api_key_name", "project_name", "workspace_name"]) == [
        "api_key_name", "workspace_name"]
    with pytest.raises(ReportError, match="none of the reports can be grouped by colour"):
        checked_groups_across(kinds, "api_key_name,colour")
