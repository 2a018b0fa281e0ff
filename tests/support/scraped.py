"""A metric's value as a scrape of this process shows it (``metrics.render()``): the same
read whatever registry or process mode the metrics live in."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from orgproxy.infra import metrics


def scraped(name: str, labels: dict[str, str]) -> float:
    """The sample ``name`` with exactly ``labels``, 0 where there is none yet."""
    _, body = metrics.render()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0
