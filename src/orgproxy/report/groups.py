"""What each endpoint can be grouped by, so that ``--by`` is checked before anything is
asked: OpenAI ignores a ``group_by`` value an endpoint does not accept (or refuses it),
and a report grouped by it would be one line of "(none)".

The ``group_by`` values are those of OpenAI's published Admin API spec (``openapi.yaml``,
each endpoint's ``group_by`` parameter); orgproxy accepts the name beside each id too.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from orgproxy.fields import NAME_FIELD_FOR_ID
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


def known(kind: str) -> bool:
    """Whether the spec lists ``kind``; a newer endpoint is asked for as it is, unchecked."""
    return kind in GROUP_BY


def valid_groups(kind: str) -> tuple[str, ...]:
    """What ``--by`` may name for ``kind``: the name beside each id first, then the rest."""
    accepted = GROUP_BY[kind]
    return (*(NAME_FIELD_FOR_ID[f] for f in accepted if f in NAME_FIELD_FOR_ID), *accepted)


def default_group(kind: str) -> str:
    """The key's name where the endpoint groups by key, else the project's."""
    return "api_key_name" if "api_key_id" in GROUP_BY.get(kind, ("api_key_id",)) else "project_name"


def describe(kind: str) -> str:
    """``api_key_name, project_name, ... (default: api_key_name)``, for --help and errors."""
    return f"{', '.join(valid_groups(kind))} (default: {default_group(kind)})"


def checked_groups(kind: str, by: str | None) -> list[str]:
    """``--by`` as a list of fields, each one ``kind`` can be grouped by (as far as the
    spec tells)."""
    if by is None:
        return [default_group(kind)]
    fields = [f.strip() for f in by.split(",") if f.strip()]
    if not known(kind):
        if not fields:
            raise ReportError("--by names no field")
        return fields
    wrong = [f for f in fields if f not in valid_groups(kind)]
    if wrong or not fields:
        what = ", ".join(wrong) if wrong else "nothing"
        raise ReportError(f"{kind} cannot be grouped by {what}; --by takes {describe(kind)}")
    return fields
