"""The upstreams orgproxy fronts, each described once: where its paths start, its id
fields, how its errors look, which request headers carry the credential and choose the
answer, and how it wants arrays in a query string.

The proxy leaf, the cache key, the query rewriting and the amender all take one of these
rather than knowing either provider by name. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orgproxy.errors import ProxyError
from orgproxy.fields import ANTHROPIC_FIELDS, OPENAI_FIELDS, FieldSet
from orgproxy.paths import ADMIN_PATHS_OUTSIDE_ORGANIZATION


@dataclass(frozen=True, eq=False)
class Provider:
    name: str  # as metrics and the history label it
    title: str  # as messages name it
    prefix: bytes  # every forwarded path starts with it
    upstream: str  # the base URL forwarded to (the default until the options say otherwise)
    fields: FieldSet
    error_body: Callable[[ProxyError], bytes]
    # Request headers whose values are the caller's credential: a request with none of
    # them is never cached (the cache key holds a hash of every forwarded header, these
    # among them, so one credential's answer is never served to another).
    credential_headers: tuple[bytes, ...]
    # Other request headers that choose whose data the upstream answers with.
    scope_headers: tuple[bytes, ...]
    # Query parameters that are arrays, sent upstream in the bracket spelling (``a[]=x&a[]=y``)
    # whatever spelling the caller used; empty: the query goes as sent, names aside.
    array_params: frozenset[bytes] = frozenset()
    # Admin API paths outside ``prefix`` that are forwarded too, as templates (see paths.py).
    paths_outside_prefix: tuple[tuple[bytes | None, ...], ...] = ()


OPENAI = Provider(
    name="openai", title="OpenAI", prefix=b"/v1/organization/", upstream="https://api.openai.com",
    fields=OPENAI_FIELDS, error_body=ProxyError.body,
    credential_headers=(b"authorization",),
    scope_headers=(b"openai-organization", b"openai-project"),
    paths_outside_prefix=ADMIN_PATHS_OUTSIDE_ORGANIZATION,  # the project role paths
)

ANTHROPIC = Provider(
    name="anthropic", title="Anthropic", prefix=b"/v1/organizations/", upstream="https://api.anthropic.com",
    fields=ANTHROPIC_FIELDS, error_body=ProxyError.anthropic_body,
    # An Admin API key goes in x-api-key, an OAuth token in Authorization: Bearer.
    credential_headers=(b"authorization", b"x-api-key"),
    # anthropic-beta turns on fields and groupings (speed, with fast-mode-...).
    scope_headers=(b"anthropic-version", b"anthropic-beta"),
    # Every example in Anthropic's documentation, and both SDKs, write arrays with
    # brackets; whether it reads ``group_by=a`` or ``group_by=a,b`` is not documented.
    array_params=frozenset({
        b"group_by", b"api_key_ids", b"workspace_ids", b"account_ids", b"service_account_ids", b"models",
        b"service_tiers", b"context_window", b"inference_geos", b"speeds", b"roles",
        # The Usage and Cost Analytics API's own (analytics/cost, analytics/usage).
        b"actor_ids", b"actor_types", b"context_windows", b"products", b"agent_ids", b"deployment_ids",
        b"environment_ids", b"session_ids", b"rbac_group_ids", b"user_profile_ids", b"claude_tag_categories",
        b"claude_tag_user_ids", b"slack_channel_ids",
    }),
)

PROVIDERS: tuple[Provider, ...] = (OPENAI, ANTHROPIC)


def provider_for_path(path: bytes) -> Provider:
    """The provider whose paths ``path`` is among, for the shape of an error about it
    (OpenAI's for anything that is neither's)."""
    if path.startswith(b"/v1/organizations/") or path == b"/v1/organizations":
        return ANTHROPIC
    return OPENAI
