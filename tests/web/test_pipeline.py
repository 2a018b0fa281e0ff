"""The answer's pipeline, one named step at a time, on plain ``UpstreamResponse`` values:
no site, no clock, no upstream."""

from __future__ import annotations

import json

import pytest

from orgproxy.snapshot import Names
from orgproxy.upstream.client import UpstreamResponse
from orgproxy.web.pipeline import Answer, amend_names, is_json_type, regroup_rows, validate

NAMES = Names.from_aliases({
    "api_keys": {"key_checkout_2025": "checkout", "key_checkout_2026": "checkout", "key_web": "web"},
    "projects": {"proj_shop": "shop"},
})
JSON = b"application/json"
# Labelled JSON, and cut short: not one JSON text.
TRUNCATED = b'{"api_key_id": "key_web", "truncated": '


def upstream(body: bytes, content_type: bytes | None = JSON, status: int = 200) -> UpstreamResponse:
    headers = [(b"Content-Type", [content_type])] if content_type is not None else []
    return UpstreamResponse(status, b"OK", [*headers, (b"X-Request-Id", [b"req_1"])], body,
                            b"%d" % len(body))


def cost_row(key: str | None, value: float, currency: str = "usd") -> dict:
    return {"object": "organization.costs.result", "amount": {"value": value, "currency": currency},
            "line_item": "completions", "project_id": "proj_shop", "api_key_id": key}


def costs_page(*rows: dict) -> bytes:
    return json.dumps({"object": "page", "data": [{"object": "bucket", "results": list(rows)}],
                       "has_more": False, "next_page": None}, indent=2).encode()


def through_the_pipeline(response: UpstreamResponse, grouped: frozenset[str] = frozenset(),
                         replace_ids: bool = False) -> Answer:
    """Every step, in the order the proxy chains them."""
    return regroup_rows(amend_names(validate(response), NAMES), grouped, NAMES, replace_ids)


# --- is_json_type -----------------------------------------------------------------------

@pytest.mark.parametrize("content_type", [
    b"application/json",
    b"application/json; charset=utf-8",
    b"Application/JSON",
    b" application/json ;charset=UTF-8",
    b"application/problem+json",
    b"application/vnd.openai.page+json; v=1",
])
def test_json_media_types_are_json(content_type: bytes) -> None:
    assert is_json_type(content_type)


@pytest.mark.parametrize("content_type", [
    None,
    b"",
    b"text/csv",
    b"text/plain",
    b"text/json",
    b"application/jsonl",
    b"application/json-seq",
    b"application/x-ndjson",
    b"text/html; charset=application/json",
    b"application/octet-stream",
])
def test_other_media_types_are_not(content_type: bytes | None) -> None:
    assert not is_json_type(content_type)


# --- validate ---------------------------------------------------------------------------

def test_valid_json_labelled_json_may_be_amended() -> None:
    response = upstream(b'{"api_key_id": "key_web"}', b"application/json; charset=utf-8")
    answer = validate(response)
    assert (answer.labelled_json, answer.valid_json, answer.unparsable) == (True, True, False)
    assert answer.response is response and answer.body == response.body
    assert answer.amended is None  # nothing amended yet


def test_labelled_json_that_does_not_parse_is_unparsable() -> None:
    answer = validate(upstream(TRUNCATED))
    assert (answer.labelled_json, answer.valid_json, answer.unparsable) == (True, False, True)
    assert answer.body == TRUNCATED


@pytest.mark.parametrize("body", [b"\xef\xbb\xbf{}", b"{} {}", b'{"a": NaN}', b"{'a': 1}", b"\xff"])
def test_bodies_json_does_not_allow_are_unparsable(body: bytes) -> None:
    assert validate(upstream(body)).unparsable


@pytest.mark.parametrize("content_type", [b"text/csv", None])
def test_json_bytes_not_labelled_json_are_left_alone(content_type: bytes | None) -> None:
    answer = validate(upstream(b'{"api_key_id": "key_web"}', content_type))
    assert (answer.labelled_json, answer.valid_json, answer.unparsable) == (False, False, False)


def test_an_empty_body_labelled_json_is_neither_json_nor_unparsable() -> None:
    # A 204, or a HEAD's answer: nothing to amend and nothing to warn about.
    answer = validate(upstream(b"", status=204))
    assert (answer.labelled_json, answer.valid_json, answer.unparsable) == (False, False, False)


# --- amend_names ------------------------------------------------------------------------

def test_amend_names_splices_names_into_the_bytes_and_counts_ids() -> None:
    body = b'{"data":[{"api_key_id":"key_web","n":1.50},{"api_key_id":"key_zzz"},{"project_id":null}]}'
    answer = amend_names(validate(upstream(body)), NAMES)
    assert answer.body == (b'{"data":[{"api_key_id":"key_web","api_key_name":"web","n":1.50},'
                           b'{"api_key_id":"key_zzz","api_key_name":"unknown"},'
                           b'{"project_id":null,"project_name":null}]}')
    amended = answer.amended
    assert amended is not None and amended.body == answer.body
    assert (amended.named, amended.unknown, amended.unknown_ids) == (1, 1, {"key_zzz": "api_key_id"})
    assert amended.occurrences == {("api_key_id", "key_web"): 1, ("api_key_id", "key_zzz"): 1}


def test_amend_names_lets_a_large_upstream_body_go_once_amended() -> None:
    import sys

    from orgproxy.web.pipeline import LET_GO_BYTES

    rows = [cost_row("key_web", 1.5)] * (LET_GO_BYTES // 150)
    body = costs_page(*rows)
    assert len(body) >= LET_GO_BYTES
    held_here = sys.getrefcount(body)
    answer = validate(upstream(body))
    assert sys.getrefcount(body) > held_here  # the response and the answer hold it
    answer = amend_names(answer, NAMES)
    assert sys.getrefcount(body) == held_here, "the upstream's body is still held beside the amended one"
    assert answer.response.status == 200 and answer.response.header(b"x-request-id") == b"req_1"
    assert answer.body.count(b'"api_key_name": "web"') == len(rows)


def test_amend_names_leaves_labelled_json_that_does_not_parse_untouched() -> None:
    answer = amend_names(validate(upstream(TRUNCATED)), NAMES)
    assert answer.body is TRUNCATED
    assert answer.amended is None


def test_amend_names_leaves_other_bodies_untouched() -> None:
    body = b'api_key_id,"key_web"\n{"api_key_id": "key_web"}'
    answer = amend_names(validate(upstream(body, b"text/csv")), NAMES)
    assert (answer.body, answer.amended) == (body, None)


# --- regroup_rows -----------------------------------------------------------------------

def test_regroup_rows_merges_rows_whose_ids_share_a_name() -> None:
    answer = through_the_pipeline(upstream(costs_page(
        cost_row("key_checkout_2025", 0.25), cost_row("key_web", 1.0), cost_row("key_checkout_2026", 0.5))),
        grouped=frozenset({"api_key_id"}))
    rows = json.loads(answer.body)["data"][0]["results"]
    assert [(r["api_key_name"], r["api_key_id"], r["api_key_ids"], r["amount"]["value"]) for r in rows] == [
        ("checkout", None, ["key_checkout_2025", "key_checkout_2026"], 0.75),
        ("web", "key_web", ["key_web"], 1.0),
    ]
    assert b"\n" not in answer.body  # a merged page is written compactly


def test_regroup_rows_replaces_ids_with_names_when_asked() -> None:
    answer = through_the_pipeline(upstream(costs_page(cost_row("key_web", 1.0), cost_row("key_zzz", 2.0))),
                                  replace_ids=True)
    known, unknown = json.loads(answer.body)["data"][0]["results"]
    assert (known["api_key_id"], known["api_key_id_original"]) == ("web", "key_web")
    assert (known["project_id"], known["project_id_original"]) == ("shop", "proj_shop")
    assert unknown["api_key_id"] == "key_zzz" and "api_key_id_original" not in unknown


def test_regroup_rows_without_grouping_or_replacing_keeps_the_amended_bytes() -> None:
    amended = amend_names(validate(upstream(costs_page(cost_row("key_web", 1.0)))), NAMES)
    body = amended.body
    answer = regroup_rows(amended, frozenset(), NAMES, False)
    assert answer.body is body
    assert answer.body.startswith(b'{\n  "object": "page"')  # the upstream's own layout


def test_regroup_rows_leaves_a_body_that_was_not_amended_alone() -> None:
    for response in (upstream(TRUNCATED), upstream(costs_page(cost_row("key_web", 1.0)), b"text/plain")):
        answer = regroup_rows(amend_names(validate(response), NAMES), frozenset({"api_key_id"}), NAMES, True)
        assert answer.body is response.body


def test_a_merge_json_cannot_hold_keeps_the_amended_body() -> None:
    # Two rows of one name whose sum is beyond a double: the merged page could not be
    # written as JSON, so the answer is the amended page, unmerged.
    amended = amend_names(validate(upstream(costs_page(
        cost_row("key_checkout_2025", 1.5e308), cost_row("key_checkout_2026", 1.5e308)))), NAMES)
    body = amended.body
    answer = regroup_rows(amended, frozenset({"api_key_id"}), NAMES, False)
    assert answer.body is body


# --- the whole chain ----------------------------------------------------------------------

def test_labelled_json_that_does_not_parse_passes_through_every_step_untouched() -> None:
    response = upstream(TRUNCATED)
    answer = through_the_pipeline(response, grouped=frozenset({"api_key_id"}), replace_ids=True)
    assert answer.body is TRUNCATED
    assert answer.unparsable and answer.amended is None
    assert answer.response is response  # status and headers as the upstream sent them
