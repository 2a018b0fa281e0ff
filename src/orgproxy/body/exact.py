"""The exact path of amending: a member-by-member walk with the standard library's JSON
scanner, for what the fast path does not handle (a ``\\u`` escape that could spell a key,
a name field already there, an id that is not a string or null). Always correct. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from json.decoder import scanstring

from orgproxy.body.insertion import OPENAI, Amended, Spelling, layout, members_for, tally
from orgproxy.body.validate import STRICT_DECODER
from orgproxy.snapshot import Members

_WS_RE = re.compile(r"[ \t\n\r]*")
_scan_value = STRICT_DECODER.scan_once


class ExactWalk:
    """Finds every id member with the standard library's scanner, position by position."""

    def __init__(self, text: str, known: Mapping[str, Mapping[str, Members]], result: Amended,
                 spelling: Spelling = OPENAI):
        self.text = text
        self.known = known
        self.result = result
        self.spelling = spelling
        self.inserts: list[tuple[int, bytes]] = []

    def skip_ws(self, i: int) -> int:
        return _WS_RE.match(self.text, i).end()  # type: ignore[union-attr]

    def value(self, i: int) -> int:
        """Walk the value at i; return the index after it."""
        c = self.text[i]
        if c == "{":
            return self.object(i)
        if c == "[":
            return self.array(i)
        return _scan_value(self.text, i)[1]

    def array(self, i: int) -> int:
        i = self.skip_ws(i + 1)
        if self.text[i] == "]":
            return i + 1
        while True:
            i = self.skip_ws(self.value(i))
            if self.text[i] == "]":
                return i + 1
            i = self.skip_ws(i + 1)  # past the comma

    def object(self, i: int) -> int:
        text = self.text
        # Each id member: (its field, where the name member goes, the id, whitespace
        # around the colon, the comma and whitespace after it). A duplicated id key gets
        # a name member after each copy, as on the fast path; parsers keep the last of
        # both, so the name read is the id read's.
        ids: list[tuple[str, int, str | None, str, str, str | None]] = []
        keys: set[str] = set()
        i = self.skip_ws(i + 1)
        if text[i] == "}":
            return i + 1
        while True:
            key, i = scanstring(text, i + 1)
            colon = self.skip_ws(i)
            value_start = self.skip_ws(colon + 1)
            value_end = self.value(value_start)
            keys.add(key)
            if key in self.spelling.name_field_for_id:
                id_value = (scanstring(text, value_start + 1)[0] if text[value_start] == '"'
                            else None)
                # The same layout rule as the fast path's pattern: a comma right after
                # the value (no space before it) is followed by the inserted member.
                following = None
                insert_at = value_end
                if text[value_end] == ",":
                    insert_at = self.skip_ws(value_end + 1)
                    following = text[value_end:insert_at]
                ids.append((key, insert_at, id_value, text[i:colon], text[colon + 1:value_start],
                            following))
            i = self.skip_ws(value_end)
            if text[i] == "}":
                break
            i = self.skip_ws(i + 1)  # past the comma
        for id_field, at, id_value, before, after, following in ids:
            # A field the object already has is never written again.
            members = tuple(m for m in members_for(id_field, id_value, self.known, self.spelling)
                            if m[0].decode() not in keys)
            if not members:
                continue
            tally(self.result, id_field, id_value, self.known)
            self.inserts.append((at, layout(
                members, before.encode(), after.encode(),
                following.encode() if following is not None else None,
            )))
        return i + 1


def amend_exact(body: bytes, known: Mapping[str, Mapping[str, Members]], spelling: Spelling = OPENAI) -> Amended:
    result = Amended(body)
    text = body.decode("utf-8")
    walk = ExactWalk(text, known, result, spelling)
    walk.value(walk.skip_ws(0))
    if walk.inserts:
        walk.inserts.sort(key=lambda insert: insert[0])
        pieces: list[bytes] = []
        done = 0
        for at, member in walk.inserts:
            # Decoding UTF-8 and encoding it again gives back the same bytes, so the
            # untouched parts stay byte-identical.
            pieces.append(text[done:at].encode("utf-8", "surrogatepass"))
            pieces.append(member)
            done = at
        pieces.append(text[done:].encode("utf-8", "surrogatepass"))
        result.body = b"".join(pieces)
    return result
