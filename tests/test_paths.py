"""Which raw request paths may be forwarded."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orgproxy.paths import is_forwardable, split_uri


@pytest.mark.parametrize("path", [
    b"/v1/organization/costs",
    b"/v1/organization/usage/completions",
    b"/v1/organization/projects/proj_abc/api_keys/key_abc",
    b"/v1/organization/users/user-abc",
    b"/v1/organization/usage/a%20b",
    b"/v1/organization/x..y",
    b"/v1/organization/...",
])
def test_paths_under_the_organization_api_are_forwardable(path: bytes) -> None:
    assert is_forwardable(path)


@pytest.mark.parametrize("path", [
    b"/v1/organization/../chat/completions", b"/v1/organization/%2e%2e/x", b"/v1/organization/%2E./x",
    b"/v1/organization/.%2e", b"/v1/organization/./costs", b"/v1/organization/%2e",
    b"/v1/organization/usage%2fcompletions", b"/v1/organization/usage%2Fcompletions",
    b"/v1/organization/usage%5ccompletions", b"/v1/organization/a\\b", b"/v1/organization/%252e%252e",
    b"/v1/organization/a%00", b"/v1/organization//costs", b"/v1/organization/costs/",
    b"/v1/organization/", b"/v1/organization", b"/v1/organizationx/costs", b"/v1/chat/completions",
    b"/", b"", b"/v1/organization/a b", b"/v1/organization/%zz", b"/v1/organization/a%2",
    b"/v1/organization/\xff", b"/V1/organization/costs",
])
def test_paths_that_leave_or_bend_the_organization_api_are_not(path: bytes) -> None:
    assert not is_forwardable(path)


@settings(database=None, deadline=None, max_examples=500)  # no deadline: timing never decides
@given(st.lists(st.sampled_from(["costs", "usage", ".", "..", "%2e", "%2E%2e", "%2f", "%5C", "", "a%41",
                                 "%25", "x.y", "%", "~", "key_1"]), min_size=1, max_size=6))
def test_a_forwardable_path_stays_under_the_prefix_however_it_is_decoded(segments: list[str]) -> None:
    path = "/v1/organization/" + "/".join(segments)
    if not is_forwardable(path.encode()):
        return
    for decoded in (path, unquote(path), unquote(unquote(path))):
        normalised = posixpath.normpath(decoded.replace("\\", "/"))
        assert normalised.startswith("/v1/organization/"), (path, normalised)
        assert "/../" not in normalised + "/"


def test_split_uri_keeps_the_raw_query_and_tells_an_empty_one_from_none() -> None:
    assert split_uri(b"/v1/organization/costs?a=1&b=%3D?x") == (b"/v1/organization/costs", b"a=1&b=%3D?x")
    assert split_uri(b"/v1/organization/costs?") == (b"/v1/organization/costs", b"")
    assert split_uri(b"/v1/organization/costs") == (b"/v1/organization/costs", None)
