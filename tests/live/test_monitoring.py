"""The alert rules in monitoring/ checked and unit-tested by promtool (Debian's prometheus
package), with the spec's thresholds.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT

ALERTS = ROOT / "monitoring" / "alerts.yml"

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


