"""The cost series as a scrape of the in-memory daemon shows them."""

from __future__ import annotations

from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

from tests.support.memory import InMemoryProxy

Labels = tuple[tuple[str, str], ...]


def scrape(proxy: InMemoryProxy) -> dict[str, dict[Labels, float]]:
    """Every orgproxy_cost_* sample on /metrics: name -> labels -> value."""
    answer = proxy.get("/metrics")
    assert answer.status == 200
    samples: dict[str, dict[Labels, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(answer.body.decode()):
        for sample in family.samples:
            if sample.name.startswith("orgproxy_cost_"):
                samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return samples
