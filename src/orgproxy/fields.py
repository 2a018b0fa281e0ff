"""The id fields each upstream sends, the fields orgproxy adds beside them, and the alias
file's table for each. Pure constants, imported by the daemon and the report alike.

Each provider's vocabulary is one ``FieldSet``; the module-level names (``NAME_FIELD_FOR_ID``
and the rest) are OpenAI's, as they were before Anthropic joined.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


def _frozen(mapping: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, eq=False)
class FieldSet:
    """One provider's id fields and what the proxy adds beside them.

    Compared by identity: each provider has exactly one, and the amender keeps the work
    derived from it (compiled patterns, lookup tables) keyed by it.
    """

    provider: str
    # Each id field, and the name field the proxy adds beside it.
    name_field_for_id: Mapping[str, str]
    # The alias file's table for each id field.
    alias_table_for_id: Mapping[str, str]
    # More fields added beside an id where discovery knows them: (added field, attribute
    # of the learned record it comes from).
    extra_fields: Mapping[str, tuple[tuple[str, str], ...]]
    # Flags added beside an id, as ``true``, only where they hold (OpenAI's key that the
    # last whole discovery no longer listed). Each flag stands for the listed ids of its
    # id field: the snapshot marks the ids a whole walk did not list.
    flag_fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # An id field whose null, in an answer grouped by that field, stands for something
    # with a name of its own (Anthropic's Default Workspace, its Console): that name.
    null_names: Mapping[str, str] = field(default_factory=dict)
    # Where a row holds an amount of money, as a path of members from the row (OpenAI's
    # ``amount.value``, Anthropic's ``amount`` and ``cost.amount``): a decimal string or a
    # number, summed exactly when rows are merged by name, a string into a string.
    decimal_measures: frozenset[tuple[str, ...]] = frozenset()
    # An id field whose ids are those of another field of the same provider (Anthropic's
    # actor ``user_id`` and its usage report's ``account_id`` are both ``user_...``): named
    # from what was learned for that one.
    named_like: Mapping[str, str] = field(default_factory=dict)
    # The upstream's filter by the ids of a field, where it is not the field's plural
    # (``api_key_ids`` for api_key_id): Anthropic filters its analytics by actor_ids.
    filter_for_id: Mapping[str, str] = field(default_factory=dict)
    # Unknown ids of these fields make discovery look again (an unknown user alone is
    # common: ungrouped usage, deleted accounts).
    triggering_fields: frozenset[str] = frozenset()
    # Prefixes of ids that belong to the other provider though they share a field or an
    # alias table (an alias file's ``[api_keys]`` holds both), kept out of this provider's
    # filters by name.
    foreign_id_prefixes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def added_beside(self) -> Mapping[str, tuple[str, ...]]:
        """Every field added beside each id field other than its name."""
        return {id_field: tuple(added for added, _ in self.extra_fields.get(id_field, ()))
                + tuple(self.flag_fields.get(id_field, ()))
                for id_field in self.name_field_for_id}

    @property
    def added_fields(self) -> tuple[str, ...]:
        """Every field the proxy may add to an object."""
        return tuple(self.name_field_for_id.values()) + tuple(
            added for beside in self.added_beside.values() for added in beside)

    @property
    def id_field_for_name(self) -> Mapping[str, str]:
        """group_by and filter values by name, and the id field each stands for."""
        return {name: id_field for id_field, name in self.name_field_for_id.items()}


OPENAI_FIELDS = FieldSet(
    provider="openai",
    name_field_for_id=_frozen({"api_key_id": "api_key_name", "project_id": "project_name",
                               "user_id": "user_name"}),
    alias_table_for_id=_frozen({"api_key_id": "api_keys", "project_id": "projects", "user_id": "users"}),
    extra_fields=_frozen({
        "api_key_id": (("api_key_redacted_value", "redacted_value"), ("api_key_owner_name", "owner_name")),
        "project_id": (),
        "user_id": (("user_email", "email"),),
    }),
    # A key the Admin API no longer lists (deleted, or in an archived project) once a
    # whole discovery has run. Anthropic's keys are never deleted (only archived, and
    # its discovery lists every status), so only OpenAI's get the flag.
    flag_fields=_frozen({"api_key_id": ("api_key_deleted",)}),
    # A number as OpenAI sends it; a string where users have seen one.
    decimal_measures=frozenset({("amount", "value")}),
    triggering_fields=frozenset({"api_key_id", "project_id"}),
    foreign_id_prefixes=_frozen({"api_key_id": ("apikey_",)}),
)

# Anthropic's Admin API (/v1/organizations/): keys are ``apikey_...``, workspaces
# ``wrkspc_...``, users ``user_...`` (the usage report's account_id, the analytics actor's
# user_id), service accounts ``svac_...``; none collides with an OpenAI id, so the alias
# tables are shared.
ANTHROPIC_FIELDS = FieldSet(
    provider="anthropic",
    name_field_for_id=_frozen({"api_key_id": "api_key_name", "workspace_id": "workspace_name",
                               "account_id": "account_name", "service_account_id": "service_account_name",
                               "user_id": "user_name"}),
    alias_table_for_id=_frozen({"api_key_id": "api_keys", "workspace_id": "workspaces", "account_id": "users",
                                "service_account_id": "service_accounts", "user_id": "users"}),
    extra_fields=_frozen({
        "api_key_id": (),
        "workspace_id": (),
        "account_id": (("account_email", "email"),),
        "service_account_id": (),
        # The analytics actor carries the user's email_address itself.
        "user_id": (),
    }),
    # A report grouped by workspace_id says null for the Default Workspace (which the
    # workspace endpoint calls "Default"), and one grouped by api_key_id says null for
    # usage in the Console (its playground and Workbench), which no key made.
    null_names=_frozen({"workspace_id": "Default", "api_key_id": "Console"}),
    # Cents as decimal strings: the legacy cost report's ``amount``, the analytics cost
    # row's ``cost.amount`` and ``cost.list_amount``.
    decimal_measures=frozenset({("amount",), ("cost", "amount"), ("cost", "list_amount")}),
    named_like=_frozen({"user_id": "account_id"}),
    # user_names= becomes the analytics API's actor_ids[] (a user actor's id is its user_id).
    filter_for_id=_frozen({"user_id": "actor_ids"}),
    triggering_fields=frozenset({"api_key_id", "workspace_id"}),
    foreign_id_prefixes=_frozen({"api_key_id": ("key_",), "account_id": ("user-",), "user_id": ("user-",)}),
)

FIELD_SETS: tuple[FieldSet, ...] = (OPENAI_FIELDS, ANTHROPIC_FIELDS)
FIELD_SET_OF: Mapping[str, FieldSet] = MappingProxyType({fs.provider: fs for fs in FIELD_SETS})

# OpenAI's, under the names they had before Anthropic joined.
NAME_FIELD_FOR_ID: Mapping[str, str] = OPENAI_FIELDS.name_field_for_id
ALIAS_TABLE_FOR_ID: Mapping[str, str] = OPENAI_FIELDS.alias_table_for_id
EXTRA_FIELDS: Mapping[str, tuple[tuple[str, str], ...]] = OPENAI_FIELDS.extra_fields
FLAG_FIELDS: Mapping[str, tuple[str, ...]] = OPENAI_FIELDS.flag_fields
ADDED_BESIDE: Mapping[str, tuple[str, ...]] = MappingProxyType(dict(OPENAI_FIELDS.added_beside))
ADDED_FIELDS: tuple[str, ...] = OPENAI_FIELDS.added_fields
ID_FIELD_FOR_NAME: Mapping[str, str] = MappingProxyType(dict(OPENAI_FIELDS.id_field_for_name))

# Every id field of every provider, in a stable order (OpenAI's first).
ALL_ID_FIELDS: tuple[str, ...] = tuple(dict.fromkeys(f for fs in FIELD_SETS for f in fs.name_field_for_id))
# Every name field of every provider, and the id field it names (the report's --by).
ALL_ID_FIELDS_FOR_NAME: Mapping[str, str] = MappingProxyType(
    {name: id_field for fs in FIELD_SETS for id_field, name in fs.name_field_for_id.items()})
# Every alias table, in the order the alias file documents them.
ALIAS_TABLES: tuple[str, ...] = ("api_keys", "projects", "users", "workspaces", "service_accounts")
# Each alias table and the id fields it names (``users`` names OpenAI's user_id and
# Anthropic's account_id alike).
ID_FIELDS_FOR_TABLE: Mapping[str, tuple[str, ...]] = MappingProxyType({
    table: tuple(dict.fromkeys(f for fs in FIELD_SETS for f, t in fs.alias_table_for_id.items() if t == table))
    for table in ALIAS_TABLES})
# The prefix of each kind of id the providers issue, and the alias table it goes in: an
# id under another table is a mistake (``key_...`` under ``[projects]``), which the alias
# file's parser reports. Ids without one of these prefixes go in any table.
ALIAS_TABLE_FOR_ID_PREFIX: Mapping[str, str] = MappingProxyType({
    "key_": "api_keys", "apikey_": "api_keys", "proj_": "projects", "user-": "users", "user_": "users",
    "wrkspc_": "workspaces", "svac_": "service_accounts",
})
# Where names come from, in order of precedence.
SOURCES = ("aliases", "discovered", "history")
