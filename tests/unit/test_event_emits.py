"""Every operation records its event (SPEC §9) in its own transaction: the type, who did it
(the actor), whose it is (the owner, who may see it), once, and data without secrets.
card.scanned is one event per card per flush with its counts; system.alert once per episode."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import pytest

from app.db import Database
from app.edge.scan_batches import ScanBatch, apply_scan_batch
from app.ops.alerts import Alerts, AlertWatch
from app.ops.backups import report
from app.public.counters import Counters, DatabaseSink
from tests.support.app import BOT_AGENTS, PHONE_UA, create_card, flush_counters, register
from tests.support.db import query
from tests.support.events import recorded, secret_looking_keys
from tests.support.leads import page_token, send_details
from tests.support.sharing import share, token_of

WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


@pytest.fixture
def world(client):
    """The admin (the first account), a member with a card, and the secrets the events must not carry."""
    admin, member = register(client), register(client)
    card = create_card(client, member["headers"], slug="ev-card", fullName="Mia Member")
    return {"client": client, "admin": admin, "member": member, "card": card,
            "secrets": [admin["accessToken"], admin["refreshToken"], member["accessToken"], member["refreshToken"]]}


def _id(world, who: str) -> str:
    return world[who]["user"]["userId"]


def _ok(response, status: int = 200):
    assert response.status_code == status, response.text
    return response


def _patch_member(world, **body):
    c = world["client"]
    return _ok(c.patch(f"/v1/admin/users/{_id(world, 'member')}", json=body, headers=world["admin"]["headers"]))


def invite(w):
    _ok(w["client"].post("/v1/admin/users/invitations", json={"email": "new@example.com"}, headers=w["admin"]["headers"]), 201)


def deactivate(w):
    _ok(w["client"].post("/v1/api-keys", json={"name": "dies"}, headers=w["member"]["headers"]), 201)
    _patch_member(w, deactivated=True)


def reactivate(w):
    _patch_member(w, deactivated=True)
    _patch_member(w, deactivated=False)


def promote(w):
    _patch_member(w, isAdmin=True)


def transfer(w):
    c = w["client"]
    _ok(c.post(f"/v1/admin/users/{_id(w, 'member')}/transfer-cards", json={"toUserId": _id(w, "admin")},
               headers=w["admin"]["headers"]))


def create_key(w):
    key = _ok(w["client"].post("/v1/api-keys", json={"name": "ci"}, headers=w["member"]["headers"]), 201).json()
    w["secrets"].append(key["key"])


def revoke_key(w):
    c = w["client"]
    key = _ok(c.post("/v1/api-keys", json={"name": "ci"}, headers=w["member"]["headers"]), 201).json()
    w["secrets"].append(key["key"])
    _ok(c.delete(f"/v1/api-keys/{key['keyId']}", headers=w["member"]["headers"]), 204)


def capture(w):
    c = w["client"]
    _ok(send_details(c, "ev-card", page_token(c, "ev-card")))


def _sms_token(w) -> str:
    sent = _ok(share(w["client"], w["member"], w["card"], {"channel": "sms", "to": "+44 20 7946 0958"}), 202).json()
    token = token_of(sent["invitations"][0]["shareUrl"])
    w["secrets"].append(token)
    return token


def share_card(w):
    _sms_token(w)


def click(w):
    token = _sms_token(w)
    for agent in (PHONE_UA, PHONE_UA, "Twitterbot/1.0"):  # counted once, never a bot
        w["client"].get(f"/i/{token}", headers={"User-Agent": agent}, follow_redirects=False)


def open_email(w):
    token = _sms_token(w)
    for _ in range(2):
        _ok(w["client"].get(f"/i/{token}/open.gif", headers={"User-Agent": PHONE_UA}))


def convert(w):
    newcomer = register(w["client"], inviteToken=_sms_token(w))
    w["newcomer"] = newcomer
    w["secrets"] += [newcomer["accessToken"], newcomer["refreshToken"]]


OPERATIONS = [
    # operation, the event it records, its actor, its owner (None: the system, a visitor; admins only)
    (invite, "user.invited", "admin", None),
    (deactivate, "user.deactivated", "admin", "member"),
    (deactivate, "apikey.revoked", "admin", "member"),
    (reactivate, "user.reactivated", "admin", "member"),
    (promote, "user.role_changed", "admin", "member"),
    (transfer, "card.transferred", "admin", "admin"),
    (create_key, "apikey.created", "member", "member"),
    (revoke_key, "apikey.revoked", "member", "member"),
    (capture, "lead.captured", None, "member"),
    (share_card, "share.created", "member", "member"),
    (click, "invitation.clicked", None, "member"),
    (open_email, "invitation.opened", None, "member"),
    (convert, "invitation.converted", "newcomer", "member"),
]


@pytest.mark.parametrize("operation, type_, actor, owner", OPERATIONS, ids=lambda v: getattr(v, "__name__", None))
def test_each_operation_records_its_event_once(world, settings, operation, type_, actor, owner):
    operation(world)
    events = recorded(settings, type_)
    assert len(events) == 1, events
    event = events[0]
    assert event["actor_id"] == (_id(world, actor) if actor else None)
    assert event["user_id"] == (_id(world, owner) if owner else None)
    assert secret_looking_keys(event["data"]) == []
    text = json.dumps(event["data"])
    assert not [secret for secret in world["secrets"] if secret in text]
    assert "password" not in text.lower()


def test_the_data_of_each_is_the_subjects_public_shape(world, settings):
    capture(world)
    share_card(world)
    promote(world)
    transfer(world)
    data = {e["type"]: e["data"] for e in recorded(settings)}
    member, card = world["member"]["user"], world["card"]
    assert data["user.role_changed"] == {"userId": member["userId"], "email": member["email"], "isAdmin": True,
                                         "status": "active", "wasAdmin": False}
    assert data["card.transferred"] == {"cardId": card["cardId"], "slug": "ev-card", "fullName": "Mia Member",
                                        "fromUserId": member["userId"], "toUserId": _id(world, "admin")}
    lead = data["lead.captured"]
    assert lead.keys() == {"leadId", "cardId", "cardSlug", "userId", "name", "company"}
    assert (lead["name"], lead["company"], lead["cardId"]) == ("Bob Visitor", "Acme", card["cardId"])
    assert lead["userId"] == member["userId"]
    shared = data["share.created"]
    assert (shared["count"], shared["new"], shared["channels"]) == (1, 1, {"sms": 1})
    assert shared["recipients"][0]["recipient"] == "+442079460958" and "shareUrl" not in shared["recipients"][0]


def test_a_refused_operation_records_nothing(world, settings):
    before = len(recorded(settings))
    c = world["client"]
    assert c.patch(f"/v1/admin/users/{_id(world, 'admin')}", json={"isAdmin": False},
                   headers=world["admin"]["headers"]).status_code == 409  # the last admin
    assert c.delete("/v1/api-keys/" + "0" * 32, headers=world["member"]["headers"]).status_code == 404
    assert _patch_member(world, isAdmin=False)  # already not an admin: no change, no event
    assert len(recorded(settings)) == before


def test_an_edge_lead_shipped_twice_is_captured_once(world, settings):
    from app.leads import form
    from app.leads.leads import NewLead, apply_shipped_lead

    client = world["client"]
    state = client.app.state
    card = client.blocking_portal.call(state.public_cards.get, "ev-card")
    sent = form.Submitted.of({"name": "Edge Visitor", "company": "Edgeco", "consent": "yes"})
    lead = NewLead.of(card, sent, "edgeclient", consented_at="2026-01-02T03:04:05.000000Z")
    for _ in range(2):
        client.blocking_portal.call(apply_shipped_lead, state.db, state.outbox, settings, lead)
    events = recorded(settings, "lead.captured")
    assert [(e["data"]["leadId"], e["data"]["name"], e["data"]["company"]) for e in events] == [
        (lead.lead_id, "Edge Visitor", "Edgeco")]
    assert "edgeclient" not in json.dumps(events)


# --- card.scanned ------------------------------------------------------------------------


def test_a_flush_records_one_scanned_event_per_card_with_its_counts(world, settings):
    client = world["client"]
    other = create_card(client, world["member"]["headers"], slug="ev-other")
    state = client.app.state
    cards = [client.blocking_portal.call(state.public_cards.get, slug) for slug in ("ev-card", "ev-other")]
    counters = Counters(DatabaseSink(state.db))  # the test's own: the app's flushes every second
    for _ in range(3):
        counters.scan(cards[0], PHONE_UA, None, "GB", "qr")
    counters.scan(cards[0], WINDOWS, None, None, "nfc")
    counters.view(cards[0], PHONE_UA, None, "GB", "link")
    counters.save(cards[1], WINDOWS, None, "DE", "share")
    client.blocking_portal.call(counters.flush)
    events = {e["data"]["cardId"]: e for e in recorded(settings, "card.scanned")}
    assert len(recorded(settings, "card.scanned")) == 2
    first, second = events[world["card"]["cardId"]], events[other["cardId"]]
    assert first["user_id"] == _id(world, "member") and first["actor_id"] is None
    assert first["data"] == {
        "cardId": world["card"]["cardId"], "slug": "ev-card", "scans": 4, "views": 1, "saves": 0,
        "bySource": {"qr": {"scans": 3}, "nfc": {"scans": 1}, "link": {"views": 1}},
        "byDevice": {"mobile": {"scans": 3, "views": 1}, "desktop": {"scans": 1}},
        "byCountry": {"GB": {"scans": 3, "views": 1}},
    }
    assert second["data"]["saves"] == 1 and second["data"]["byCountry"] == {"DE": {"saves": 1}}
    client.blocking_portal.call(counters.flush)  # nothing pending: no event
    assert len(recorded(settings, "card.scanned")) == 2


def test_scans_through_the_door_are_in_the_events_and_bots_are_not(world, settings):
    client = world["client"]
    for _ in range(2):
        client.get("/c/ev-card", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
    for agent in BOT_AGENTS:
        client.get("/c/ev-card", headers={"User-Agent": agent}, follow_redirects=False)
    flush_counters(client)
    events = recorded(settings, "card.scanned")
    # The app's own flush may have split them over two seconds: each is one event for the card.
    assert events and {e["data"]["cardId"] for e in events} == {world["card"]["cardId"]}
    assert sum(e["data"]["scans"] for e in events) == 2
    assert sum(e["data"]["byDevice"].get("mobile", {}).get("scans", 0) for e in events) == 2
    assert query(settings, "SELECT scan_count FROM cards WHERE slug = 'ev-card'") == [(2,)]


def test_edge_batches_and_own_scans_of_a_second_are_one_scanned_event(world, settings):
    """Batches are held (held_scans) and announced by the primary's next flush, merged with
    its own counting: at most one card.scanned a card a second, however many edges."""
    client = world["client"]
    card_id = world["card"]["cardId"]
    card = client.blocking_portal.call(client.app.state.public_cards.get, "ev-card")
    client.__exit__(None, None, None)  # the app stopped: no flush of its own from here on

    def batch(seq: int, scans: int, country: str) -> ScanBatch:
        return msgspec.convert({
            "outboxId": "a" * 32, "seq": seq, "edge": "fra", "counts": [[card_id, scans, 1, 0], ["b" * 32, 5, 0, 0]],
            "events": [
                [card_id, "scan", "2026-12-07T12:00:00Z", "mobile", None, country, scans, "qr"],
                [card_id, "view", "2026-12-07T12:00:01Z", "desktop", "example.com", None, 1, None],
            ]}, ScanBatch)

    async def second() -> list[bool]:
        db = Database(settings.database_path)
        await db.open()
        try:
            applied = [await apply_scan_batch(db, b) for b in (batch(1, 2, "DE"), batch(1, 2, "DE"), batch(2, 3, "FR"))]
            assert recorded(settings, "card.scanned") == []  # held until the flush
            counters = Counters(DatabaseSink(db))
            counters.scan(card, PHONE_UA, None, "DE", "nfc")
            await counters.flush()
            await counters.flush()  # nothing new: no second event
            return applied
        finally:
            await db.close()

    assert asyncio.run(second()) == [True, False, True]  # the batch sent again is applied once
    events = recorded(settings, "card.scanned")
    assert len(events) == 1  # the unknown card has none
    assert events[0]["user_id"] == _id(world, "member")
    assert events[0]["data"] == {
        "cardId": card_id, "slug": "ev-card", "scans": 6, "views": 2, "saves": 0,
        "bySource": {"qr": {"scans": 5}, "nfc": {"scans": 1}},
        "byDevice": {"mobile": {"scans": 6}, "desktop": {"views": 2}},
        "byCountry": {"DE": {"scans": 3}, "FR": {"scans": 3}},
    }
    assert query(settings, "SELECT scan_count, view_count FROM cards WHERE slug = 'ev-card'") == [(6, 2)]
    assert query(settings, "SELECT count(*) FROM held_scans") == [(0,)]


# --- system.alert ------------------------------------------------------------------------


class FakeLag:
    """A LagMonitor's answer, set by the test (the real one reads Litestream's files)."""

    def __init__(self) -> None:
        self.value: float | None = 0.0

    def lag(self) -> float | None:
        return self.value


def test_a_system_alert_is_recorded_once_per_episode(tmp_path: Path):
    async def scenario():
        db = Database(tmp_path / "t.db")
        await db.open()
        alerts, lag, disk = Alerts(db), FakeLag(), [(10, 100)]
        watch = AlertWatch(alerts, lag, disk_usage=lambda: disk[0])  # type: ignore[arg-type]
        for value in (5.0, 90.0, 120.0, 300.0, 10.0, 75.0):  # two episodes of lag
            lag.value = value
            await watch.check()
        disk[0] = (95, 100)
        await watch.check()
        await watch.check()
        for ok in (False, False, True, False):  # two failed verifications in a row are one episode
            await report(alerts, ok)
        async with db.read() as conn:
            rows = await (await conn.execute("SELECT type, actor_id, user_id, data FROM events ORDER BY id")).fetchall()
        await db.close()
        return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    events = asyncio.run(scenario())
    assert {(t, a, u) for t, a, u, _ in events} == {("system.alert", None, None)}
    assert [d["alert"] for *_, d in events] == [
        "replication_lag", "replication_lag", "disk_nearly_full", "backup_verify_failed", "backup_verify_failed"]
    assert all(d.keys() == {"alert", "message", "severity"} for *_, d in events)
    assert events[0][3]["severity"] == "page" and "90 s behind" in events[0][3]["message"]
