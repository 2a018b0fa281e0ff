"""Names learned from an Admin API or read from the history, made text as they enter.

A provider's console lets anyone type a key's or a project's name, so a name may hold what
no output can carry as it is (``orgproxy.text``: a lone surrogate, a control character).
Unlike an alias file's, such a name is not refused: the id is still worth naming. Each
offending code point of the name and of the other text learned with it (the key's
redacted value, its owner's name, an email) is replaced by U+FFFD, once, here; a warning
names the id. An id itself is kept exactly (it must match the ids in answers), except one
holding a lone surrogate, which no provider issues and no UTF-8 store can keep: that
record is left out, and said so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from orgproxy.names.history import Learned
from orgproxy.ops.logs import log
from orgproxy.text import escaped, not_text_because, valid_text, without_surrogates

__all__ = ["TEXT_ATTRIBUTES", "as_text"]

# What a learned record carries as text beside its id (all but the id, its field and its provider).
TEXT_ATTRIBUTES = ("name", "redacted_value", "email", "project_id", "owner_type", "owner_id", "owner_name")
# A record told about already: (provider, id field, id, what was replaced).
Told = tuple[str, str, str, tuple[str, ...]]


def as_text(records: Iterable[Learned], source: str, told: set[Told] | None = None) -> list[Learned]:
    """``records`` made text (see the module's docstring). ``source`` names where they
    come from in the warnings (``OpenAI discovery``, ``the history``); ``told``: the
    records already warned about, by whoever checks the same source again and again (a
    discovery that walks every hour warns once per id, not once per walk)."""
    told = set() if told is None else told
    made: list[Learned] = []
    for record in records:
        if without_surrogates(record.id) != record.id:
            _tell(told, record, ("id",), "{source}: {provider} {id_field} {id} is not text (it holds a lone"
                                         " surrogate); it is left out", source)
            continue
        replaced = tuple(attribute for attribute in TEXT_ATTRIBUTES
                         if (value := getattr(record, attribute)) is not None and not_text_because(value))
        if replaced:
            record = dataclasses.replace(record, **{a: valid_text(getattr(record, a)) for a in replaced})
            _tell(told, record, replaced, "{source}: {provider} {id_field} {id} is named with {replaced} made"
                                          " text: each control character or lone surrogate replaced by U+FFFD",
                  source)
        made.append(record)
    return made


def _tell(told: set[Told], record: Learned, replaced: tuple[str, ...], message: str, source: str) -> None:
    key = (record.provider, record.id_field, record.id, replaced)
    if key in told:
        return
    told.add(key)
    log.warn(message, source=source, provider=record.provider, id_field=record.id_field, id=escaped(record.id),
             replaced=", ".join(replaced), attributes=list(replaced), problem="not_text")
