"""The alert rules in monitoring/ checked and unit-tested by promtool (Debian's prometheus
package), with the spec's thresholds; and the dashboard and the alerts query only metrics
the service exports, a primary's and an edge's (whose app starts `litestream restore`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from tests.support.app import PHONE_UA, create_card, flush_counters, make_settings, register
from tests.support.monitoring import ALERTS, _alert_rules, _panel_exprs, _queried_exprs, metric_names_in, unexported_metrics

# (alert, input series, eval time, labels of the firing alert, or None for silent)
ALERT_CASES = [
    ("QRContactHigh5xxRate", {'http_requests_total{status_code="200"}': "0+90x20",
                              'http_requests_total{status_code="500"}': "0+10x20"},
     "12m", {"severity": "page"}),
    # still pending: 5 minutes have not passed
    ("QRContactHigh5xxRate", {'http_requests_total{status_code="200"}': "0+90x20",
                              'http_requests_total{status_code="500"}': "0+10x20"},
     "4m", None),
    ("QRContactHigh5xxRate", {'http_requests_total{status_code="200"}': "0+98x20",
                              'http_requests_total{status_code="503"}': "0+2x20"},
     "12m", None),
    ("QRContactSlowRedirects", {'redirect_latency_seconds_bucket{le="0.05"}': "0x20",
                                'redirect_latency_seconds_bucket{le="0.25"}': "0+10x20",
                                'redirect_latency_seconds_bucket{le="+Inf"}': "0+10x20"},
     "12m", {"severity": "warning"}),
    ("QRContactLowKFactor", {'viral_k_factor{period="7d"}': "0.7x1560",
                             'viral_k_factor{period="30d"}': "0.5x1560"},
     "25h", {"severity": "warning", "period": "7d"}),
    ("QRContactLowKFactor", {'viral_k_factor{period="7d"}': "0.7x1560"}, "23h", None),
    ("QRContactReplicationLag", {'replication_lag_seconds{instance="a"}': "5x5 90x10"},
     "12m", {"severity": "page", "instance": "a"}),
    ("QRContactEmailBacklogGrowing", {'queue_depth{queue="email"}': "0+2x40"},
     "35m", {"severity": "warning", "queue": "email"}),
    ("QRContactEmailBacklogGrowing", {'queue_depth{queue="email"}': "50x40"}, "35m", None),
    ("QRContactEmailFailures", {'queue_jobs_failed_total{queue="email"}': "0+1x40"},
     "35m", {"severity": "warning", "queue": "email"}),
    # The last good check 26 h 30 min ago (never, 0, counts as long ago).
    ("QRContactBackupNotVerified", {'backup_last_verified_timestamp_seconds{instance="a"}': "0x1700"},
     "26h30m", {"severity": "warning", "instance": "a"}),
    ("QRContactBackupNotVerified", {'backup_last_verified_timestamp_seconds{instance="a"}': "0x1700"},
     "26h10m", None),
    # Checked every hour, always recent.
    ("QRContactBackupNotVerified", {'backup_last_verified_timestamp_seconds{instance="a"}': "0+60x1700"},
     "27h", None),
    # The check is off: NaN never fires.
    ("QRContactBackupNotVerified", {'backup_last_verified_timestamp_seconds{instance="a"}': "NaN+0x1700"},
     "27h", None),
    ("QRContactBackupVerifyFailed", {'backup_verify_failures_total{instance="a"}': "0x30 1x60"},
     "40m", {"severity": "page", "instance": "a"}),
    # Hours after the failure, checks good again: silent.
    ("QRContactBackupVerifyFailed", {'backup_verify_failures_total{instance="a"}': "0x30 1x300"},
     "4h", None),
    ("QRContactBackupVerifyFailed", {'backup_verify_failures_total{instance="a"}': "0x300"}, "4h", None),
    # An edge failing every minute; one blip while the primary restarted is silent.
    ("QRContactEdgeShippingFailing", {'edge_batches_failed_total{instance="e"}': "0+3x20"},
     "12m", {"severity": "warning", "instance": "e"}),
    ("QRContactEdgeShippingFailing", {'edge_batches_failed_total{instance="e"}': "0x5 4x20"}, "15m", None),
    # Refused on every retry: fires; one refusal an hour ago: silent.
    ("QRContactEdgeBatchRefused", {'edge_batches_refused_total{instance="e"}': "0+20x20"},
     "5m", {"severity": "page", "instance": "e"}),
    ("QRContactEdgeBatchRefused", {'edge_batches_refused_total{instance="e"}': "0x5 1x80"}, "70m", None),
    # Scans keep arriving while nothing ships; a backlog that stays (no scans) is silent.
    ("QRContactEdgeOutboxGrowing", {'edge_outbox_depth{instance="e"}': "0+5x20"},
     "15m", {"severity": "warning", "instance": "e"}),
    ("QRContactEdgeOutboxGrowing", {'edge_outbox_depth{instance="e"}': "50x20"}, "15m", None),
    # A copy that stays behind; one that fell behind for a moment (the watchdog restored it) is silent.
    ("QRContactEdgeCopyBehind", {'edge_replica_lag_seconds{instance="e"}': "0+60x20"},
     "12m", {"severity": "warning", "instance": "e"}),
    ("QRContactEdgeCopyBehind", {'edge_replica_lag_seconds{instance="e"}': "0 60 120 180 0x20"}, "15m", None),
    # SPEC §11: 15 errors a minute; 5 a minute, or one burst of 40, is silent.
    ("QRContactErrors", {'errors_total{instance="a",kind="http"}': "0+15x20"}, "10m", {"severity": "page", "instance": "a"}),
    ("QRContactErrors", {'errors_total{instance="a",kind="http"}': "0x5 40x20"}, "10m", None),
    # 85 % full for 10 minutes; 75 % is silent.
    ("QRContactDataVolumeFull", {'data_volume_used_bytes{instance="a"}': "85x20", 'data_volume_size_bytes{instance="a"}': "100x20"},
     "10m", {"severity": "warning", "instance": "a"}),
    ("QRContactDataVolumeFull", {'data_volume_used_bytes{instance="a"}': "75x20", 'data_volume_size_bytes{instance="a"}': "100x20"},
     "10m", None),
    ("QRContactWebhookDisabled", {'webhooks_disabled{instance="a"}': "0x5 1x10"}, "8m", {"severity": "warning", "instance": "a"}),
    ("QRContactWebhookDisabled", {'webhooks_disabled{instance="a"}': "0x20"}, "8m", None),
    # 60 lookups a minute, 80 % hits, for 75 minutes: fires; for 50 minutes: not yet; 95 % hits,
    # or 80 % of 2 lookups a minute (a quiet instance): silent.
    ("QRContactCardCacheMisses", {'cache_hits_total{instance="a",cache="slug"}': "0+48x80",
                                  'cache_misses_total{instance="a",cache="slug"}': "0+12x80"},
     "75m", {"severity": "warning", "instance": "a"}),
    ("QRContactCardCacheMisses", {'cache_hits_total{instance="a",cache="slug"}': "0+48x80",
                                  'cache_misses_total{instance="a",cache="slug"}': "0+12x80"}, "50m", None),
    ("QRContactCardCacheMisses", {'cache_hits_total{instance="a",cache="slug"}': "0+57x80",
                                  'cache_misses_total{instance="a",cache="slug"}': "0+3x80"}, "75m", None),
    ("QRContactCardCacheMisses", {'cache_hits_total{instance="a",cache="slug"}': "0+1.6x80",
                                  'cache_misses_total{instance="a",cache="slug"}': "0+0.4x80"}, "75m", None),
]


def test_promtool_checks_alert_rules() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("alert", "series", "at", "labels"),
    ALERT_CASES,
    ids=[f"{a}-{at}-{'fires' if labels else 'silent'}" for a, _, at, labels in ALERT_CASES],
)
def test_alert_thresholds(tmp_path: Path, alert: str, series: dict, at: str, labels: dict | None) -> None:
    promtool = _promtool()
    # promtool compares annotations verbatim; thresholds are what is tested here.
    groups = yaml.safe_load(ALERTS.read_text())
    for group in groups["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(groups))
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "alert_rule_test": [{
                "eval_time": at,
                "alertname": alert,
                "exp_alerts": [] if labels is None else [{"exp_labels": labels}],
            }],
        }],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    result = subprocess.run(
        [promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not on PATH (Debian: apt-get install prometheus)")
    return path


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
    # An edge's own series (app/edge/local_copy.py), from an edge app that has no copy yet.
    data_dir = tmp_path_factory.mktemp("edge-metrics")
    edge = make_settings(
        data_dir, role="edge", replica_url=f"file://{data_dir / 'empty-replica'}", primary_url="http://127.0.0.1:9",
        primary_internal_url="http://127.0.0.1:9", edge_token="e" * 32,
    )
    with TestClient(create_app(edge)) as client:
        text += client.get("/metrics").text
    return frozenset(sample.name for family in text_string_to_metric_families(text) for sample in family.samples)


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
        "data_volume_used_bytes", "data_volume_size_bytes", "webhooks_disabled",
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
