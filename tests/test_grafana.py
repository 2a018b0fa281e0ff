"""etc/grafana/: the dashboard is one a provisioned Grafana loads as it is (its Prometheus
chosen by a variable, not an import-time input), every query names only series orgproxy
exports or its rules record, and the provisioning example points where the README says.
(What Prometheus answers to each query: tests/process/test_prometheus_server.py.)"""

from __future__ import annotations

import json
import re

from tests.conftest import ROOT

GRAFANA = ROOT / "etc" / "grafana"
DASHBOARD = json.loads((GRAFANA / "orgproxy-costs.json").read_text(encoding="utf-8"))
RULES = (ROOT / "etc" / "prometheus" / "orgproxy-rules.yml").read_text(encoding="utf-8")


def test_every_panel_queries_the_chosen_prometheus_and_has_a_place_of_its_own() -> None:
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert "__inputs" not in DASHBOARD, "a provisioned dashboard gets no import-time inputs"
    panels = DASHBOARD["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert all(t["datasource"] == panel["datasource"] and t["expr"] for t in panel["targets"]), panel["title"]
        place = panel["gridPos"]
        assert place["x"] + place["w"] <= 24 and place["w"] > 0 and place["h"] > 0
    cells = [(x, y) for p in panels for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
             for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])]
    assert len(cells) == len(set(cells)), "no two panels overlap"


def test_every_series_a_query_names_is_exported_or_recorded() -> None:
    recorded = set(re.findall(r"- record: (\S+)", RULES))
    exported = {"orgproxy_cost_refresh_failures_total", "orgproxy_cost_month_to_date_usd"}
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            names = set(re.findall(r"[a-z_]+:[a-z_]+:[a-z_]+|orgproxy_[a-z_]+", target["expr"]))
            assert names and names <= recorded | exported, (panel["title"], names - recorded - exported)


def test_the_provisioning_example_loads_the_dashboard_from_files() -> None:
    provider = (GRAFANA / "provisioning" / "dashboards" / "orgproxy.yml").read_text(encoding="utf-8")
    assert "apiVersion: 1" in provider and "type: file" in provider
    path = re.search(r"^\s+path: (\S+)$", provider, re.MULTILINE)
    assert path is not None
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"etc/grafana/orgproxy-costs.json {path.group(1)}/" in readme, "the README copies it there"
    source = (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    assert "type: prometheus" in source
