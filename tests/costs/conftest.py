from __future__ import annotations

from collections.abc import Iterator

import pytest

from orgproxy.costs.collector import COLLECTOR
from orgproxy.ops.logs import log


@pytest.fixture(autouse=True)
def _no_cost_series_left_for_other_tests(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(log, "namespace", log.namespace)  # a worker's makeService renames it
    yield
    COLLECTOR.source = None
