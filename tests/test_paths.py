"""Which raw request paths may be forwarded."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orgproxy.paths import _PLAIN_PATH, _is_plain, is_forwardable, split_uri
from orgproxy.providers import ANTHROPIC, OPENAI, provider_for_path
from tests.support.properties import property_settings as examples_of


def anthropic_forwards(path: bytes) -> bool:
    return is_forwardable(path, ANTHROPIC.prefix, ANTHROPIC.paths_outside_prefix)


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
    # Path parameters: a server that drops them (Tomcat, Spring) reads these as "..".
    b"/v1/organization/..;/..;/v1/chat/completions", b"/v1/organization/%2e%2e;/x",
    b"/v1/organization/..;x=1/x", b"/v1/organization/..%3b/x", b"/v1/organization/..%3B/x",
    b"/v1/organization/.;/costs", b"/v1/organization/%2E;x/costs", b"/v1/organization/;x/costs",
    b"/v1/organization/costs/;", b"/v1/organization/%3b/costs",
])
def test_paths_that_leave_or_bend_the_organization_api_are_not(path: bytes) -> None:
    assert not is_forwardable(path)


@pytest.mark.parametrize("path", [
    b"/v1/organization/costs;v=1",
    b"/v1/organization/a;b/costs",
    b"/v1/organization/x..;y",
])
def test_a_segment_with_parameters_is_forwardable_while_it_names_something(path: bytes) -> None:
    assert is_forwardable(path)


@pytest.mark.parametrize("path", [
    b"/v1/projects/proj_abc/roles",
    b"/v1/projects/proj_abc/roles/role_1",
    b"/v1/projects/proj_abc/users/user-abc/roles",
    b"/v1/projects/proj_abc/users/user-abc/roles/role_1",
    b"/v1/projects/proj_abc/groups/group_1/roles",
    b"/v1/projects/proj_abc/groups/group_1/roles/role_1",
])
def test_the_admin_api_s_project_role_paths_are_forwardable(path: bytes) -> None:
    assert is_forwardable(path)


@pytest.mark.parametrize("path", [
    b"/v1/projects", b"/v1/projects/proj_abc", b"/v1/projects/proj_abc/api_keys",
    b"/v1/projects/proj_abc/roles/role_1/x", b"/v1/projects/proj_abc/users/u/roles/r/x",
    b"/v1/projects/proj_abc/rol%65s", b"/v1/projects/../chat/roles", b"/v1/projects/..;/roles",
    b"/v1/projects/%2e%2e/roles", b"/v1/projects/proj_abc/users/..%3b/roles",
    b"/v1/projects//roles", b"/v1/projects/a%2Fb/roles", b"/v2/projects/proj_abc/roles",
    b"/v1/chat/completions", b"/v1/files", b"/v1/models", b"/v1/projects/p/groups/g/roles/",
])
def test_other_paths_outside_the_organization_api_are_not(path: bytes) -> None:
    assert not is_forwardable(path)


@pytest.mark.parametrize("path", [
    b"/v1/organizations/api_keys", b"/v1/organizations/usage_report/messages",
    b"/v1/organizations/workspaces/wrkspc_1/members", b"/v1/organizations/api_keys;v=1",
])
def test_paths_under_anthropic_s_prefix_are_forwardable_to_anthropic(path: bytes) -> None:
    assert anthropic_forwards(path) and provider_for_path(path) is ANTHROPIC


@pytest.mark.parametrize("path", [
    b"/v1/organizations/..;/..;/v1/messages", b"/v1/organizations/%2e%2e;/x", b"/v1/organizations/..;x=1/x",
    b"/v1/organizations/..%3b/x", b"/v1/organizations/;x/api_keys", b"/v1/organizations/api_keys/;",
    b"/v1/organizations/../organization/costs", b"/v1/organizations//api_keys", b"/v1/organizations/",
    # OpenAI's paths are not Anthropic's, nor are OpenAI's role paths outside its prefix.
    b"/v1/organization/costs", b"/v1/projects/proj_abc/roles",
])
def test_anthropic_forwards_nothing_that_leaves_or_bends_its_prefix(path: bytes) -> None:
    assert not anthropic_forwards(path)


@examples_of(500)
@given(st.sampled_from(["/v1/organization/", "/v1/projects/", "/v1/organizations/"]),
       st.lists(st.sampled_from(["costs", "usage", ".", "..", "%2e", "%2E%2e", "%2f", "%5C", "", "a%41",
                                 "%25", "x.y", "%", "~", "key_1", "roles", "users", ";", "..;", ".;x=1",
                                 "%3b", "%3B", "a;b", "%2e%2e;"]), min_size=1, max_size=6))
def test_a_forwardable_path_stays_under_its_prefix_however_it_is_decoded(prefix: str, segments: list[str]) -> None:
    path = prefix + "/".join(segments)
    provider = ANTHROPIC if prefix == "/v1/organizations/" else OPENAI
    if not is_forwardable(path.encode(), provider.prefix, provider.paths_outside_prefix):
        return
    for decoded in (path, unquote(path), unquote(unquote(path))):
        # As a server that drops ';' parameters from each segment would see it, too.
        for seen in (decoded, "/".join(segment.split(";", 1)[0] for segment in decoded.split("/"))):
            normalised = posixpath.normpath(seen.replace("\\", "/"))
            assert normalised.startswith(prefix), (path, normalised)
            assert "/../" not in normalised + "/" and "//" not in seen, (path, seen)


def test_split_uri_keeps_the_raw_query_and_tells_an_empty_one_from_none() -> None:
    assert split_uri(b"/v1/organization/costs?a=1&b=%3D?x") == (b"/v1/organization/costs", b"a=1&b=%3D?x")
    assert split_uri(b"/v1/organization/costs?") == (b"/v1/organization/costs", b"")
    assert split_uri(b"/v1/organization/costs") == (b"/v1/organization/costs", None)


@examples_of(300)
@given(st.from_regex(_PLAIN_PATH, fullmatch=True))
def test_a_path_the_shortcut_takes_has_only_plain_segments(path: bytes) -> None:
    # What lets is_forwardable skip its segment-by-segment check for such a path.
    assert path.startswith(b"/") and all(_is_plain(segment) for segment in path[1:].split(b"/"))
