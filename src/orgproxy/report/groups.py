"""What each endpoint can be grouped by, so that ``--by`` is checked before anything is
asked: the upstream ignores a ``group_by`` value an endpoint does not accept (or refuses
it), and a report grouped by it would be one line of "(none)".

OpenAI's ``group_by`` values are those of its published Admin API spec (``openapi.yaml``,
each endpoint's ``group_by`` parameter); Anthropic's those its reference lists for the
Usage and Cost Analytics API (every dimension of a row's ``group`` but ``actor``, an object)
and for the legacy messages usage report and cost report. orgproxy accepts the name
beside each id too. Whose reports is one of ``ENDPOINTS``: ``openai``, ``anthropic`` (the
analytics API) or ``anthropic-legacy``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from orgproxy.fields import FIELD_SET_OF
from orgproxy.report.errors import ReportError

_BY_USER_KEY_MODEL = ("project_id", "user_id", "api_key_id", "model")

# The report's kind (the path under /v1/organization/) -> the group_by values OpenAI accepts.
GROUP_BY: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "costs": ("project_id", "line_item", "api_key_id"),
    "usage/audio_speeches": _BY_USER_KEY_MODEL,
    "usage/audio_transcriptions": _BY_USER_KEY_MODEL,
    "usage/code_interpreter_sessions": ("project_id",),
    "usage/completions": (*_BY_USER_KEY_MODEL, "batch", "service_tier"),
    "usage/embeddings": _BY_USER_KEY_MODEL,
    "usage/file_search_calls": ("project_id", "user_id", "api_key_id", "vector_store_id"),
    "usage/images": (*_BY_USER_KEY_MODEL, "size", "source"),
    "usage/moderations": _BY_USER_KEY_MODEL,
    "usage/vector_stores": ("project_id",),
    "usage/web_search_calls": (*_BY_USER_KEY_MODEL, "context_level"),
})
USAGE_KINDS: tuple[str, ...] = tuple(kind.removeprefix("usage/") for kind in GROUP_BY if kind != "costs")

# Anthropic's Usage and Cost Analytics API: ``costs`` is /v1/organizations/analytics/cost,
# ``usage`` /v1/organizations/analytics/usage; cost rows have two dimensions more.
_ANALYTICS = ("api_key_id", "workspace_id", "model", "service_tier", "context_window", "inference_geo", "speed",
              "product", "actor_type", "agent_id", "deployment_id", "environment_id", "session_id",
              "organization_id", "rbac_group_id", "user_profile_id", "slack_channel_id", "claude_tag_category",
              "claude_tag_user_id")
ANTHROPIC_GROUP_BY: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "costs": (*_ANALYTICS, "cost_type", "token_type"),
    "usage": _ANALYTICS,
})
# Its legacy reports: ``costs`` is /v1/organizations/cost_report, ``usage/messages``
# /v1/organizations/usage_report/messages (``speed`` needs an anthropic-beta header).
ANTHROPIC_LEGACY_GROUP_BY: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "costs": ("workspace_id", "description"),
    "usage/messages": ("api_key_id", "workspace_id", "model", "service_tier", "context_window", "inference_geo",
                       "speed", "account_id", "service_account_id"),
})
GROUP_BY_OF: Mapping[str, Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {"openai": GROUP_BY, "anthropic": ANTHROPIC_GROUP_BY, "anthropic-legacy": ANTHROPIC_LEGACY_GROUP_BY})
ENDPOINTS = tuple(GROUP_BY_OF)


def _names(endpoints: str) -> Mapping[str, str]:
    return FIELD_SET_OF[endpoints.split("-")[0]].name_field_for_id


def known(kind: str, provider: str = "openai") -> bool:
    """Whether the spec lists ``kind``; a newer endpoint is asked for as it is, unchecked."""
    return kind in GROUP_BY_OF[provider]


def valid_groups(kind: str, provider: str = "openai") -> tuple[str, ...]:
    """What ``--by`` may name for ``kind``: the name beside each id first, then the rest."""
    accepted = GROUP_BY_OF[provider][kind]
    names = _names(provider)
    return (*(names[f] for f in accepted if f in names), *accepted)


def default_group(kind: str, provider: str = "openai") -> str:
    """The key's name where the endpoint groups by key, else the first id's name (OpenAI's
    project, Anthropic's workspace)."""
    names = _names(provider)
    accepted = GROUP_BY_OF[provider].get(kind, ("api_key_id",))
    if "api_key_id" in accepted:
        return names["api_key_id"]
    return next((names[f] for f in accepted if f in names), names["api_key_id"])


def describe(kind: str, provider: str = "openai") -> str:
    """``api_key_name, project_name, ... (default: api_key_name)``, for --help and errors."""
    return f"{', '.join(valid_groups(kind, provider))} (default: {default_group(kind, provider)})"


def checked_groups(kind: str, by: str | None, provider: str = "openai") -> list[str]:
    """``--by`` as a list of fields, each one ``kind`` can be grouped by (as far as the
    spec tells)."""
    if by is None:
        return [default_group(kind, provider)]
    fields = [f.strip() for f in by.split(",") if f.strip()]
    if not known(kind, provider):
        if not fields:
            raise ReportError("--by names no field")
        return fields
    wrong = [f for f in fields if f not in valid_groups(kind, provider)]
    if wrong or not fields:
        what = ", ".join(wrong) if wrong else "nothing"
        whose = {"openai": "", "anthropic": "Anthropic's ", "anthropic-legacy": "Anthropic's legacy "}[provider]
        raise ReportError(f"{whose}{kind} cannot be grouped by {what}; --by takes {describe(kind, provider)}")
    return fields


def checked_groups_across(kinds: Mapping[str, str], by: str | None) -> list[str]:
    """``--by`` for several providers' reports at once (``kinds``: whose reports -> the
    kind asked of them): each field one of them can be grouped by; a provider is asked
    for those it can (``asked_of``), and has none of the others."""
    if len(kinds) == 1:
        ((provider, kind),) = kinds.items()
        return checked_groups(kind, by, provider)
    if by is None:
        provider, kind = next(iter(kinds.items()))
        return [default_group(kind, provider)]
    fields = [f.strip() for f in by.split(",") if f.strip()]
    wrong = [f for f in fields if not any(f in asked_of(kind, provider, [f]) for provider, kind in kinds.items())]
    if wrong or not fields:
        what = ", ".join(wrong) if wrong else "nothing"
        takes = "; ".join(f"{provider} {kind}: {describe(kind, provider)}" for provider, kind in kinds.items())
        raise ReportError(f"none of the reports can be grouped by {what}; --by takes {takes}")
    return fields


def asked_of(kind: str, provider: str, by: list[str]) -> list[str]:
    """The fields of ``by`` that ``provider``'s ``kind`` can be grouped by."""
    if not known(kind, provider):
        return by
    valid = valid_groups(kind, provider)
    return [f for f in by if f in valid]
