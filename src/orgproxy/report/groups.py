"""What each endpoint can be grouped by, so that ``--by`` is checked before anything is
asked: the upstream ignores a ``group_by`` value an endpoint does not accept (or refuses
it), and a report grouped by it would be one line of "(none)".

OpenAI's ``group_by`` values are those of its published Admin API spec (``openapi.yaml``,
each endpoint's ``group_by`` parameter); Anthropic's those its Admin API reference lists
for the messages usage report and the cost report. orgproxy accepts the name beside each
id too.
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

# The same for Anthropic: ``costs`` is /v1/organizations/cost_report, ``usage/messages``
# /v1/organizations/usage_report/messages (``speed`` needs an anthropic-beta header).
ANTHROPIC_GROUP_BY: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "costs": ("workspace_id", "description"),
    "usage/messages": ("api_key_id", "workspace_id", "model", "service_tier", "context_window", "inference_geo",
                       "speed", "account_id", "service_account_id"),
})
GROUP_BY_OF: Mapping[str, Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {"openai": GROUP_BY, "anthropic": ANTHROPIC_GROUP_BY})


def known(kind: str, provider: str = "openai") -> bool:
    """Whether the spec lists ``kind``; a newer endpoint is asked for as it is, unchecked."""
    return kind in GROUP_BY_OF[provider]


def valid_groups(kind: str, provider: str = "openai") -> tuple[str, ...]:
    """What ``--by`` may name for ``kind``: the name beside each id first, then the rest."""
    accepted = GROUP_BY_OF[provider][kind]
    names = FIELD_SET_OF[provider].name_field_for_id
    return (*(names[f] for f in accepted if f in names), *accepted)


def default_group(kind: str, provider: str = "openai") -> str:
    """The key's name where the endpoint groups by key, else the first id's name (OpenAI's
    project, Anthropic's workspace)."""
    names = FIELD_SET_OF[provider].name_field_for_id
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
        whose = "" if provider == "openai" else f"{provider.capitalize()}'s "
        raise ReportError(f"{whose}{kind} cannot be grouped by {what}; --by takes {describe(kind, provider)}")
    return fields
