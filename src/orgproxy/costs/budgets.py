"""The budgets file (``--budgets``): each key name's monthly budget, in dollars. Pure but for
reading the file in ``load_budgets``.

    # budgets.toml: key name -> dollars a month, on both providers together
    [budgets]
    checkout = 1000
    "batch-jobs" = 250.50
    "Zürich analytics" = 80

One table, ``[budgets]``; each key is a key name as the alias files and discovery name keys
(quoted where it holds anything but letters, digits, ``-`` and ``_``: a dot would make it a
dotted key), each value a positive number of dollars, integer or decimal, read exactly (a
TOML float is taken as the decimal it is written as, never as a double). A name's budget is
for its cost on OpenAI and Anthropic together, as the rules' recording rule adds a name's
cost up; a name nobody has has a budget all the same (it may come). An empty file is no
budgets.

Every problem is an error naming the file and the line (and, for TOML's syntax, the column),
as an alias file's are: the daemon does not start with a broken file, and a reload that
finds one keeps the budgets in force.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from orgproxy.names.aliasfile import AliasFileError, decode_text, read_alias_bytes, toml_syntax_error
from orgproxy.names.aliaslines import locate
from orgproxy.text import escaped, not_text_because

TABLE = "budgets"
# A budgets file holds a few dozen names, or a few thousand: a MiB is tens of thousands.
MAX_BYTES = 1024 * 1024

Budgets = Mapping[str, Decimal]
NO_BUDGETS: Budgets = MappingProxyType({})


class BudgetsFileError(AliasFileError):
    """A problem with the budgets file, located as an alias file's are."""


def load_budgets(path: str) -> Budgets:
    """The budgets in the file at ``path``; BudgetsFileError for anything else."""
    try:
        return parse_budgets(read_alias_bytes(path, MAX_BYTES, what="budgets files"), path)
    except BudgetsFileError:
        raise
    except AliasFileError as e:  # reading, or text that is not UTF-8
        raise BudgetsFileError(e.path, e.line, e.reason, e.column) from None


def parse_budgets(text: bytes, path: str) -> Budgets:
    """The budgets in ``text``; ``path`` names the file in errors."""
    source = decode_text(text, path)
    try:
        document = tomllib.loads(source, parse_float=Decimal)
    except tomllib.TOMLDecodeError as e:
        error = toml_syntax_error(str(e), source, path)
        raise BudgetsFileError(error.path, error.line, error.reason, error.column) from None
    except RecursionError:
        raise BudgetsFileError(path, None, "nested too deeply") from None

    def error(at: tuple[str, ...], reason: str) -> BudgetsFileError:
        try:
            position = locate(source, False, at)
        except ValueError:  # never hide the reason
            position = None
        return BudgetsFileError(path, position[0] if position else None, reason)

    for key in document:
        if key != TABLE:
            raise error((key,), f"unknown table {_quoted(key)} (the budgets go in [{TABLE}])")
    table = document.get(TABLE, {})
    if not isinstance(table, dict):
        raise error((TABLE,), f"{TABLE} must be a table, not {_kind(table)}")
    budgets: dict[str, Decimal] = {}
    for name, value in table.items():
        at = (TABLE, name)
        if not name.strip():
            raise error(at, f"{TABLE}.{_quoted(name)}: a key name must not be empty")
        why = not_text_because(name)
        if why is not None:
            raise error(at, f"{TABLE}.{_quoted(name)}: the name {why}")
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise error(at, f"{TABLE}.{_quoted(name)}: a budget must be a number of dollars, not {_kind(value)}")
        dollars = Decimal(value)
        if not dollars.is_finite() or dollars <= 0:
            raise error(at, f"{TABLE}.{_quoted(name)}: a budget must be more than 0 dollars, not {value}")
        budgets[name] = dollars
    return MappingProxyType(budgets)


def _quoted(text: str) -> str:
    # What a person typed, as a log line may show it (a name may hold anything).
    return escaped(repr(text))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"  # a date or a time
