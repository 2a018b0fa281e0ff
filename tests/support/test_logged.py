"""The harness's own watch: a test that leaves a traceback in the log fails."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import fail


def test_a_failed_deferred_nobody_handled_is_seen(logged_failures: Callable[[], list[dict[str, Any]]]) -> None:
    fail(RuntimeError("dropped on purpose"))
    gc.collect()
    assert [str(e["log_failure"].value) for e in logged_failures()] == ["dropped on purpose"]
