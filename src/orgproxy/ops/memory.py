"""Keep the pages of large buffers mapped between requests (glibc's allocator only).

A 10 MB usage page passes through several buffers of its size: the upstream's body, the
amended body, the transport's write buffer. glibc serves each allocation of 128 KiB or
more with a fresh mmap() and unmaps it on free(), so every request faults every page of
every such buffer in again. On the benchmark's large page that was 6,700 page faults and
10 ms of system time per request, a sixth of the whole. Raising the mmap threshold (to
glibc's maximum) puts those buffers in the heap, and raising the trim threshold keeps the
heap's freed top for the next request.

The cost: after large responses the process keeps part of the memory they used, free
for the next ones rather than given back (on the benchmark's large page, RSS 69 -> 155
MiB after one at a time); what it keeps is bounded by its peak, which --max-response-bytes
and --max-concurrency bound.
"""

from __future__ import annotations

import ctypes

# From glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc refuses an mmap threshold above 32 MiB on 64-bit systems.
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024


def keep_large_buffers() -> bool:
    """Tune the allocator as above; False where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
