"""Who is the primary (app/ops/failover.py): the epochs' replica paths, the lease's S3
signature, the role each node takes from the lease, promote's claim, and a primary that
lost its role refusing writes. The drill with real processes is tests/live/test_failover.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from app.ops import failover
from app.ops.failover import Lease
from tests.support.app import make_settings

S3 = "s3://bucket/db?endpoint=http://127.0.0.1:9000&region=us-east-1&forcePathStyle=true"


@pytest.mark.parametrize(("base", "epoch", "expected"), [
    ("file:///data/replica", 0, "file:///data/replica"),
    ("file:///data/replica/", 2, "file:///data/replica/epoch-2"),
    (S3, 1, "s3://bucket/db/epoch-1?endpoint=http://127.0.0.1:9000&region=us-east-1&forcePathStyle=true"),
    ("s3://bucket", 3, "s3://bucket/epoch-3"),
])
def test_each_epoch_replicates_to_a_path_of_its_own(base, epoch, expected):
    assert failover.epoch_url(base, epoch) == expected


def test_the_lease_object_is_signed_as_aws_signs_it():
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    store = failover.LeaseStore(S3, {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret"})
    assert store.url == "http://127.0.0.1:9000/bucket/db/primary.json"
    body = b'{"epoch":1}'
    request = AWSRequest("PUT", store.url, data=body, headers={"x-amz-content-sha256": failover.hashlib.sha256(body).hexdigest()})
    S3SigV4Auth(Credentials("AKID", "secret"), "s3", "us-east-1").add_auth(request)
    now = dt.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)  # botocore's clock
    ours = failover.sign_v4("PUT", store.url, body, "us-east-1", "AKID", "secret", None, now=now)
    assert ours["authorization"] == request.headers["Authorization"]


def settings_at(tmp_path: Path, name: str, **overrides):
    data = tmp_path / name
    data.mkdir(exist_ok=True)
    return make_settings(data, replica_url=f"file://{tmp_path / 'replica'}", edge_token="t" * 32, **overrides)


def test_promote_claims_the_next_epoch_and_sets_an_old_database_aside(tmp_path, monkeypatch):
    monkeypatch.delenv(failover.BASE_VARIABLE, raising=False)
    edge = settings_at(tmp_path, "edge", role="edge", internal_port=8101, port=8100)
    edge.database_path.write_bytes(b"an old primary's file")
    claim = failover.promote(edge, None, None)
    assert (claim.epoch, claim.internal_url, claim.public_url) == (1, "http://127.0.0.1:8101", "http://127.0.0.1:8100")
    assert failover.read_held(edge) == claim == failover.store_for(edge).read()
    assert not edge.database_path.exists() and (edge.data_dir / "qrcontact.db.before-epoch-1").exists()
    assert failover.promote(edge, None, None) == claim  # run again: already the primary
    other = settings_at(tmp_path, "other", role="edge", internal_port=8201)
    assert failover.promote(other, None, "http://10.0.0.2:8001").epoch == 2


def test_promote_will_not_advertise_a_wildcard_address(tmp_path, monkeypatch):
    monkeypatch.delenv(failover.BASE_VARIABLE, raising=False)
    with pytest.raises(failover.LeaseError, match="--internal-url"):
        failover.promote(settings_at(tmp_path, "edge", host="0.0.0.0"), None, None)  # noqa: S104


def test_the_lease_decides_each_nodes_role(tmp_path, monkeypatch):
    monkeypatch.delenv(failover.BASE_VARIABLE, raising=False)
    primary = settings_at(tmp_path, "primary", internal_port=8001)
    edge = settings_at(tmp_path, "edge", role="edge", primary_internal_url="http://127.0.0.1:8001", internal_port=8101)
    # No lease: as configured, at REPLICA_URL itself.
    assert failover.resolve(primary) == (primary, None)
    assert failover.resolve(edge) == (edge, None)

    claim = failover.promote(edge, "http://edge.example", None)
    promoted, held = failover.resolve(edge)
    assert (promoted.role, promoted.replica_url, held) == ("primary", f"file://{tmp_path / 'replica'}/epoch-1", claim)
    # The old primary comes back: an edge of the new one, at the new epoch's path.
    old, held = failover.resolve(primary)
    assert held is None and (old.role, old.primary_internal_url, old.primary_url) == (
        "edge", "http://127.0.0.1:8101", "http://edge.example")
    assert old.replica_url.endswith("/epoch-1")
    with pytest.raises(failover.LeaseError, match="EDGE_TOKEN"):
        failover.resolve(dataclasses.replace(primary, edge_token=None))
    # The promoted node on a new, empty data folder at the same address: still the primary.
    fresh = settings_at(tmp_path, "fresh", role="edge", internal_port=8101)
    assert failover.resolve(fresh)[0].role == "primary" and failover.read_held(fresh) == claim


@pytest.mark.parametrize(("held", "lease", "deposed"), [
    (None, None, False),
    (None, Lease(1, "b"), True),
    (Lease(1, "a"), Lease(1, "a"), False),
    (Lease(1, "a"), Lease(2, "b"), True),
    (Lease(1, "a"), Lease(1, "b"), True),  # two promotes at once: the later lease wins
])
def test_a_primary_knows_when_it_lost_the_role(held, lease, deposed):
    assert failover.deposed(held, lease) is deposed


def test_a_primary_that_lost_its_role_refuses_writes_with_503(client, user):
    db = client.app.state.db
    failover.refuse_when_deposed(db, None)(Lease(1, "b", internal_url="http://10.0.0.2:8001"))
    answer = client.post("/v1/cards", json={"fullName": "A", "email": "a@example.com"}, headers=user["headers"])
    assert (answer.status_code, answer.headers["retry-after"]) == (503, "5")
    assert "no longer the primary" in answer.json()["detail"]
    assert client.get("/v1/cards", headers=user["headers"]).status_code == 200  # reads still answered
