"""Health, diagnostics, metrics and request ids, on the app over HTTP with a real database."""

from __future__ import annotations

import logging
import math
import shutil

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.ops.monitoring import ActiveUsers, RequestIdFilter
from app.sqlite import sqlite3
from tests.support.app import PHONE_UA, create_card, make_settings, register
from tests.support.mail import drain_outbox
from tests.support.waiting import wait_until


def metric(client: TestClient, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"{name}{labels or ''} is not exported")


# --- /metrics ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "authorization", "status"),
    [
        (None, None, 200),
        ("s3cret-token", None, 401),
        ("s3cret-token", "Bearer wrong", 401),
        ("s3cret-token", "s3cret-token", 401),
        ("s3cret-token", "Basic s3cret-token", 401),
        ("s3cret-token", "Bearer s3cret-token", 200),
        ("s3cret-token", "bearer s3cret-token", 200),
    ],
)
def test_metrics_token(tmp_path, token, authorization, status, app_of):
    with TestClient(app_of(make_settings(tmp_path, metrics_token=token))) as client:
        headers = {"Authorization": authorization} if authorization else {}
        response = client.get("/metrics", headers=headers)
        assert response.status_code == status
        if status == 200:
            assert "sqlite_database_bytes" in response.text


def test_database_gauges_and_sqlite_version(client, user):
    create_card(client, user["headers"])
    drain_outbox(client)  # the verification email's delivery is a write of its own
    db_path = client.app.state.db.path
    wal = db_path.with_name(db_path.name + "-wal")
    # Any background write can only make the files grow: the scrape lies between two stats.
    before = db_path.stat().st_size, wal.stat().st_size
    database_bytes, wal_bytes = metric(client, "sqlite_database_bytes"), metric(client, "sqlite_wal_bytes")
    after = db_path.stat().st_size, wal.stat().st_size
    assert 0 < before[0] <= database_bytes <= after[0]
    assert 0 < before[1] <= wal_bytes <= after[1]
    assert metric(client, "sqlite_info", version=sqlite3.sqlite_version) == 1
    # Without replication there is no lag to speak of, rather than a reassuring 0.
    assert math.isnan(metric(client, "replication_lag_seconds"))
    # The data folder's file system, as df sees it (used or reserved: what the service cannot write).
    usage = shutil.disk_usage(db_path.parent)
    assert metric(client, "data_volume_size_bytes") == usage.total
    assert 0 < metric(client, "data_volume_used_bytes") <= usage.total


def test_active_users_counts_distinct_users_of_authenticated_requests(client):
    assert metric(client, "active_users") == 0
    first, second = register(client), register(client)
    for auth in (first, first, second):
        assert client.get("/v1/me", headers=auth["headers"]).status_code == 200
    assert client.get("/v1/me").status_code == 401
    assert metric(client, "active_users") == 2


def test_active_users_forget_users_after_fifteen_minutes():
    now = [1000.0]
    active = ActiveUsers(clock=lambda: now[0])
    active.seen("a")
    now[0] += 600
    active.seen("b")
    active.seen("a")  # seen again: counts from now
    assert active.count() == 2
    now[0] += 15 * 60 - 1
    assert active.count() == 2
    now[0] += 2
    assert active.count() == 0


# --- /health -------------------------------------------------------------------------


def test_health_without_replication(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "replication": "off", "queue": "ok"},
        "version": "0.1.0",
        "replication": {"enabled": False, "litestreamRunning": False, "lagSeconds": None},
    }


def test_health_says_when_litestream_is_not_running(tmp_path, app_of):
    settings = make_settings(tmp_path, replica_url=f"file://{tmp_path / 'replica'}")
    with TestClient(app_of(settings)) as client:
        register(client)  # a commit nothing replicates
        body = client.get("/health").json()
        assert client.get("/health").status_code == 200
        assert body["checks"]["replication"] == "litestream not running"
        assert body["replication"]["litestreamRunning"] is False
        # The lag is the commit's age on the wall clock, rounded to the millisecond: read at
        # once it may be 0.0 (and a clock stepped back holds it there for a while); it grows.
        wait_until(lambda: client.get("/health").json()["replication"]["lagSeconds"] > 0, timeout=10, what="a lag")


def test_health_is_503_when_the_database_is_unusable_and_logs_it_with_the_request_id(client, caplog):
    caplog.handler.addFilter(RequestIdFilter())
    client.blocking_portal.call(client.app.state.db.close)
    with caplog.at_level(logging.INFO):
        response = client.get("/health", headers={"X-Request-ID": "probe-42"})
    assert response.status_code == 503
    assert response.json()["status"] == "error"
    assert response.json()["checks"]["database"].startswith("error")
    assert response.headers["x-request-id"] == "probe-42"
    failure = [r for r in caplog.records if r.name == "app.ops"]
    assert failure and all(r.request_id == "probe-42" for r in failure)


# --- request ids ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "echoed"),
    [(None, False), ("abc-123", True), ("fly.req:01H9", True), ("has spaces", False), ("x" * 129, False)],
)
def test_every_response_has_a_request_id(client, given, echoed):
    headers = {"X-Request-ID": given} if given else {}
    for path in ("/health", "/no/such/page", "/v1/me"):
        response = client.get(path, headers=headers)
        request_id = response.headers["x-request-id"]
        assert (request_id == given) is echoed
        assert 1 <= len(request_id) <= 128


def test_access_log_line_per_request_with_route_template(client, caplog):
    caplog.handler.addFilter(RequestIdFilter())
    card = create_card(client, register(client)["headers"], slug="logged-card")
    with caplog.at_level(logging.INFO, logger="app.access"):
        response = client.get("/p/logged-card", headers={"User-Agent": PHONE_UA})
    lines = [r for r in caplog.records if r.name == "app.access"]
    assert len(lines) == 1
    assert lines[0].request_id == response.headers["x-request-id"]
    assert lines[0].fields["status"] == 200
    assert lines[0].fields["path"] == "/p/{name}"  # the template: no slugs or tokens in logs
    assert card["slug"] not in lines[0].getMessage()


# --- /v1/admin/diagnostics -----------------------------------------------------------


@pytest.mark.parametrize(("who", "status"), [("anonymous", 401), ("member", 403), ("admin", 200)])
def test_diagnostics_is_for_the_admin_only(client, who, status):
    admin = register(client)  # the first account is the admin
    member = register(client)
    headers = {"anonymous": {}, "member": member["headers"], "admin": admin["headers"]}[who]
    assert client.get("/v1/admin/diagnostics", headers=headers).status_code == status


def test_diagnostics_reports_database_replica_queue_and_caches(client):
    admin = register(client)
    create_card(client, admin["headers"], slug="diag-card")
    for _ in range(3):
        client.get("/c/diag-card", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
    drain_outbox(client)  # the verification email, delivered: the queue is empty
    db_path = client.app.state.db.path
    wal_path = db_path.with_name(db_path.name + "-wal")
    # The counter flush and the mail worker may write meanwhile; the files only grow.
    sizes_before = db_path.stat().st_size, wal_path.stat().st_size
    body = client.get("/v1/admin/diagnostics", headers=admin["headers"]).json()
    sizes_after = db_path.stat().st_size, wal_path.stat().st_size
    database = body["database"]
    assert sizes_before[0] <= database.pop("sizeBytes") <= sizes_after[0]
    assert sizes_before[1] <= database.pop("walBytes") <= sizes_after[1]
    assert database == {
        "path": str(db_path),
        "quickCheck": "ok",
        "journalMode": "wal",
        "sqliteVersion": sqlite3.sqlite_version,
    }
    assert body["replication"] == {
        "enabled": False, "replica": "off", "litestreamRunning": False, "lagSeconds": None,
        "replicaTxid": None, "replicaCheckedAt": None,
    }
    assert body["queue"] == {"depth": 0}
    slug_cache = body["caches"]["slug"]
    assert slug_cache["hits"] >= 2 and slug_cache["misses"] >= 1
    assert slug_cache["hitRate"] == round(slug_cache["hits"] / (slug_cache["hits"] + slug_cache["misses"]), 4)
    assert body["uptimeSeconds"] >= 0
    assert body["version"] == "0.1.0"


def test_diagnostics_hides_the_replica_query(tmp_path, app_of):
    url = "s3://bucket/db?endpoint=https://fly.storage.tigris.dev&region=auto"
    with TestClient(app_of(make_settings(tmp_path, replica_url=url))) as client:
        admin = register(client)
        body = client.get("/v1/admin/diagnostics", headers=admin["headers"]).json()
    assert body["replication"]["replica"] == "s3://bucket/db"
    assert body["replication"]["enabled"] is True
