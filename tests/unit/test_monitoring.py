"""The alert rules and Grafana dashboard in monitoring/ are valid, hold the spec's
thresholds, and query only metrics the service exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import pytest
import yaml
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from tests.support import ROOT
from tests.support.app import PHONE_UA, create_card, flush_counters, make_settings, register

ALERTS = ROOT / "monitoring" / "alerts.yml"
DASHBOARD = ROOT / "monitoring" / "grafana-dashboard.json"
ROWS = ["Overview", "QR generation", "Redirects", "Infrastructure"]


@pytest.fixture(scope="module")
def exported_metric_names(tmp_path_factory) -> frozenset[str]:
    """Every series name the real app serves at /metrics after being used a little."""
    settings = make_settings(tmp_path_factory.mktemp("metrics"), trust_proxy_headers=True)
    with TestClient(create_app(settings)) as client:
        user = register(client)
        card = create_card(client, user["headers"], slug="metrics-card")
        for mode, fmt in (("static", "png"), ("dynamic", "svg")):
            response = client.get(f"/v1/cards/{card['cardId']}/qr", params={"format": fmt, "mode": mode}, headers=user["headers"])
            assert response.status_code == 200
        phone = {"User-Agent": PHONE_UA, "Fly-Region": "ams"}
        assert client.get("/c/metrics-card", headers=phone, follow_redirects=False).status_code == 302
        assert client.get("/p/metrics-card", headers=phone).status_code == 200
        flush_counters(client)
        assert client.get("/no/such/page").status_code == 404
        text = client.get("/metrics").text
    # An edge's own series (app/edge_copy.py), from an edge app that has no copy yet.
    data_dir = tmp_path_factory.mktemp("edge-metrics")
    edge = make_settings(
        data_dir, role="edge", replica_url=f"file://{data_dir / 'empty-replica'}", primary_url="http://127.0.0.1:9",
        primary_internal_url="http://127.0.0.1:9", edge_token="e" * 32,
    )
    with TestClient(create_app(edge)) as client:
        text += client.get("/metrics").text
    return frozenset(sample.name for family in text_string_to_metric_families(text) for sample in family.samples)


PROMQL_WORDS = frozenset(
    # aggregations, functions and keywords; function calls are also caught by the
    # following "(", this list covers the ones written with a space before it
    """
    sum min max avg group stddev stdvar count count_values bottomk topk quantile
    by without on ignoring group_left group_right bool and or unless offset start end
    abs absent absent_over_time avg_over_time ceil changes clamp clamp_max clamp_min
    count_over_time day_of_month day_of_week day_of_year days_in_month delta deriv exp
    floor histogram_quantile holt_winters hour idelta increase irate label_join
    label_replace last_over_time ln log10 log2 max_over_time min_over_time minute month
    predict_linear present_over_time quantile_over_time rate resets round scalar sgn sort
    sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time time timestamp vector
    year inf nan le
    """.split()
)

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.I)
# Not after a word character or "$" (number exponents, durations, Grafana variables),
# and not a function name.
_IDENT = re.compile(r"(?<![\w:$])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()")


def metric_names_in(expr: str) -> set[str]:
    """Metric names a PromQL expression selects."""
    # Strings first: they may hold braces ("/c/{slug}"); label names only live in
    # matchers and grouping clauses, which go next.
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {m for m in _IDENT.findall(text) if m.lower() not in PROMQL_WORDS}


def unexported_metrics(exprs: Iterable[str], exported: Iterable[str]) -> dict[str, set[str]]:
    """For each expression naming a metric not in ``exported``, those names."""
    known = set(exported)
    return {e: missing for e in exprs if (missing := metric_names_in(e) - known)}


def _alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_panels() -> list[dict]:
    """Top-level panels in order, with a collapsed row's panels right after it."""
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _panel_exprs() -> list[str]:
    return [t["expr"] for p in _dashboard_panels() for t in p.get("targets", []) if "expr" in t]


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


def _queried_exprs() -> list[str]:
    exprs = _panel_exprs() + [rule["expr"] for rule in _alert_rules()]
    # An expression with no metric name found would pass the check below unseen.
    assert exprs and all(metric_names_in(e) for e in exprs), [e for e in exprs if not metric_names_in(e)]
    return exprs


def test_dashboard_and_alerts_query_only_exported_metrics(exported_metric_names) -> None:
    assert unexported_metrics(_queried_exprs(), exported_metric_names) == {}


def test_the_spec_metrics_are_exported(exported_metric_names) -> None:
    spec = {
        "http_requests_total", "http_request_duration_seconds_bucket", "qr_generations_total",
        "qr_generation_duration_seconds_bucket", "redirects_total", "redirect_latency_seconds_bucket",
        "errors_total", "cache_hits_total", "cache_misses_total", "replication_lag_seconds",
        "sqlite_database_bytes", "sqlite_wal_bytes", "sqlite_info", "active_users",
        "viral_events_total", "viral_k_factor", "queue_depth", "queue_jobs_failed_total",
        "backup_last_verified_timestamp_seconds", "backup_verify_failures_total",
    }
    assert spec <= exported_metric_names, sorted(spec - exported_metric_names)


def test_the_edge_counting_metrics_are_exported_and_shown(exported_metric_names) -> None:
    edge = {"edge_outbox_depth", "edge_batches_shipped_total", "edge_batches_failed_total", "edge_batches_applied_total",
            "edge_batches_refused_total", "edge_replica_lag_seconds"}
    assert edge <= exported_metric_names, sorted(edge - exported_metric_names)
    shown = set().union(*(metric_names_in(e) for e in _panel_exprs()))
    alerted = set().union(*(metric_names_in(rule["expr"]) for rule in _alert_rules()))
    assert edge <= shown
    assert {"edge_outbox_depth", "edge_batches_failed_total", "edge_batches_refused_total"} <= alerted
