"""The one digest the pool's and the cache's keys are made with (upstream/digest.py)."""

from __future__ import annotations

from orgproxy.upstream.digest import DIGEST_SIZE, digest_of


def test_where_the_parts_divide_is_part_of_the_digest() -> None:
    assert digest_of([b"ab", b"c"]) != digest_of([b"a", b"bc"])
    assert digest_of([b"a", b""]) != digest_of([b"a"]) != digest_of([b"1:a"])
    assert digest_of([b"2:ab"]) != digest_of([b"ab"])  # a part that spells a length is still one part


def test_the_same_parts_give_the_same_32_bytes_however_long() -> None:
    assert digest_of([b"authorization", b"Bearer sk"]) == digest_of(iter([b"authorization", b"Bearer sk"]))
    assert {len(digest_of([])), len(digest_of([b"x" * 100_000]))} == {DIGEST_SIZE} == {32}
