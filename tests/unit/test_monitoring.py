"""The alert rules and Grafana dashboard in monitoring/ are complete, and the PromQL
reading that finds the metrics they query works (that the service exports those metrics,
an edge's included, is tests/live/test_monitoring.py: an edge app starts Litestream)."""

from __future__ import annotations

import json

import pytest

from tests.support.monitoring import DASHBOARD, _alert_rules, _dashboard_panels, metric_names_in, unexported_metrics

ROWS = ["Overview", "QR generation", "Redirects", "Infrastructure"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket'
            '{path="/c/{slug}", le="1"}[5m])))',
            {"http_request_duration_seconds_bucket"},
        ),
        (
            'sum(rate(http_requests_total{status_code=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) > 0.05',
            {"http_requests_total"},
        ),
        (
            "queue_depth > 0 and deriv(queue_depth[15m]) > 0 unless on(instance) up offset 1h",
            {"queue_depth", "up"},
        ),
        (
            "topk(10, sum without (instance) (increase(scans_by_country_total[$__range]))) * 1e3",
            {"scans_by_country_total"},
        ),
        ("process_resident_memory_bytes", {"process_resident_memory_bytes"}),
        ("sum(rate (x:y_total[1m])) BY (job)", {"x:y_total"}),
    ],
)
def test_metric_names_in(expr: str, names: set[str]) -> None:
    assert metric_names_in(expr) == names


def test_unexported_metrics_reports_unknown_names() -> None:
    exprs = ["rate(http_requests_total[5m])", "rate(nope_total[5m]) / http_requests_total"]
    assert unexported_metrics(exprs, {"http_requests_total"}) == {exprs[1]: {"nope_total"}}


def test_every_alert_rule_is_complete() -> None:
    rules = _alert_rules()
    assert len(rules) >= 8
    for rule in rules:
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in {"page", "warning"}, rule["alert"]
        assert {"summary", "description"} <= rule["annotations"].keys(), rule["alert"]


def test_dashboard_has_the_four_rows_each_with_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = _dashboard_panels()
    assert [p["title"] for p in panels if p["type"] == "row"] == ROWS
    per_row: dict[str, int] = {}
    current = None
    for panel in panels:
        if panel["type"] == "row":
            current = panel["title"]
            per_row[current] = 0
        else:
            assert current is not None, f"panel {panel['title']!r} sits above the first row"
            per_row[current] += 1
    assert all(per_row.values()), per_row
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


