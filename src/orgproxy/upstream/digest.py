"""One digest for the keys that must not hold what they key: the pool's (a request's
credential and scope headers) and the cache's (everything a request forwards).

Each part goes in after its length, so no two sequences of parts hash the same bytes
(``[b"ab", b"c"]`` is not ``[b"a", b"bc"]``), whatever bytes a caller put in a header;
every digest is 32 bytes however long the parts. BLAKE2b: the standard library's own,
without an OpenSSL call, on every request.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

DIGEST_SIZE = 32


def digest_of(parts: Iterable[bytes]) -> bytes:
    joined: list[bytes] = []
    append = joined.append
    for part in parts:
        append(b"%d:" % len(part))
        append(part)
    return blake2b(b"".join(joined), digest_size=DIGEST_SIZE).digest()
