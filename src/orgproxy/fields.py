"""The id fields the upstream sends, the fields orgproxy adds beside them, and the alias
file's table for each. Pure constants, imported by the daemon and the report alike."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Each id field, and the name field the proxy adds beside it.
NAME_FIELD_FOR_ID: Mapping[str, str] = MappingProxyType(
    {"api_key_id": "api_key_name", "project_id": "project_name", "user_id": "user_name"}
)
# The alias file's table for each id field.
ALIAS_TABLE_FOR_ID: Mapping[str, str] = MappingProxyType(
    {"api_key_id": "api_keys", "project_id": "projects", "user_id": "users"}
)
# More fields added beside an id where discovery knows them: (added field, attribute of
# the learned record it comes from).
EXTRA_FIELDS: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType({
    "api_key_id": (("api_key_redacted_value", "redacted_value"), ("api_key_owner_name", "owner_name")),
    "project_id": (),
    "user_id": (("user_email", "email"),),
})
# Flags added beside an id, as ``true``, only where they hold: a key the Admin API no
# longer lists (deleted, or in an archived project) once a whole discovery has run.
FLAG_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "api_key_id": ("api_key_deleted",),
    "project_id": (),
    "user_id": (),
})
# Every field added beside each id field other than its name.
ADDED_BESIDE: Mapping[str, tuple[str, ...]] = MappingProxyType({
    id_field: tuple(added for added, _ in EXTRA_FIELDS[id_field]) + FLAG_FIELDS[id_field]
    for id_field in NAME_FIELD_FOR_ID
})
# Every field the proxy may add to an object.
ADDED_FIELDS: tuple[str, ...] = tuple(NAME_FIELD_FOR_ID.values()) + tuple(
    added for beside in ADDED_BESIDE.values() for added in beside)
# group_by and filter values by name, and the id field each stands for.
ID_FIELD_FOR_NAME: Mapping[str, str] = MappingProxyType(
    {name: id_field for id_field, name in NAME_FIELD_FOR_ID.items()}
)
# Where names come from, in order of precedence.
SOURCES = ("aliases", "discovered", "history")
