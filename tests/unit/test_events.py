"""Events written by Tx.emit in the operation's own transaction (SPEC §9): the row exists
with its change or not at all, its id sorts in commit order, its data is a public shape."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from app.db import Database
from app.events.events import events_after, prune
from tests.support.app import create_card
from tests.support.db import query


def _events(settings, type_: str | None = None) -> list[dict]:
    rows = query(settings, "SELECT event_id, type, actor_id, user_id, data FROM events ORDER BY id")
    return [
        {"event_id": event_id, "type": type, "actor_id": actor, "user_id": owner, "data": json.loads(data)}
        for event_id, type, actor, owner, data in rows
        if type_ in (None, type)
    ]


def test_registering_and_card_operations_record_their_events(client, user, settings):
    card = create_card(client, user["headers"])
    assert client.patch(f"/v1/cards/{card['cardId']}", json={"title": "CTO"}, headers=user["headers"]).status_code == 200
    assert client.delete(f"/v1/cards/{card['cardId']}", headers=user["headers"]).status_code == 204
    events = _events(settings)
    assert [e["type"] for e in events] == ["user.registered", "card.created", "card.updated", "card.deleted"]
    user_id = user["user"]["userId"]
    assert all(e["user_id"] == user_id and e["actor_id"] == user_id for e in events)
    assert events[2]["data"]["changed"] == ["title"] and events[2]["data"]["title"] == "CTO"
    assert events[1]["data"] == {"cardId": card["cardId"], "userId": user_id, "slug": card["slug"], "fullName": "Jane Doe",
                                 "email": "jane@example.com", "organization": None, "title": None}
    text = json.dumps([e["data"] for e in events])
    assert "password" not in text.lower() and user["accessToken"] not in text
    assert [e["event_id"] for e in events] == sorted(e["event_id"] for e in events)


def test_a_refused_change_records_no_event(client, user, settings):
    before = len(_events(settings))
    response = client.post("/v1/cards", json={"fullName": "X", "email": "x@example.com", "slug": "admin"}, headers=user["headers"])
    assert response.status_code == 422
    assert len(_events(settings)) == before


def test_an_event_and_its_change_roll_back_together(tmp_path):
    async def scenario():
        db = Database(tmp_path / "t.db")
        await db.open()
        with pytest.raises(RuntimeError):
            async with db.write() as tx:
                await tx.emit("card.created", {"cardId": "c1"}, user_id="u1")
                raise RuntimeError("the operation fails after emitting")
        rang = []
        db.event_listeners.append(lambda: rang.append(1))
        async with db.write() as tx:
            await tx.emit("card.created", {"cardId": "c2"}, user_id="u1")
            await tx.emit("card.updated", {"cardId": "c2"}, user_id="u1")
            assert rang == []  # not before the commit
        assert rang == [1]  # once per transaction
        async with db.read() as conn:
            seen = await events_after(conn, viewer=None, after=None)
            mine = await events_after(conn, viewer="u2", after=None)
        await db.close()
        return seen, mine

    seen, mine = asyncio.run(scenario())
    assert [e.data["cardId"] for e in seen] == ["c2", "c2"] and mine == []


def test_event_ids_increase_within_a_millisecond_and_when_the_clock_steps_back(tmp_path):
    db = Database(tmp_path / "t.db")
    moment = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    ids = [db.next_event_id(moment) for _ in range(1000)] + [db.next_event_id(moment - timedelta(seconds=5))]
    ids.append(db.next_event_id(moment + timedelta(milliseconds=1)))
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and all(len(i) == 26 for i in ids)


def test_old_events_are_pruned_in_batches(tmp_path):
    now = [datetime(2026, 1, 1, tzinfo=UTC)]

    async def scenario():
        db = Database(tmp_path / "t.db", clock=lambda: now[0])
        await db.open()
        for _ in range(3):
            async with db.write() as tx:
                for i in range(400):
                    await tx.emit("card.scanned", {"i": i})
        now[0] += timedelta(days=91)
        async with db.write() as tx:
            await tx.emit("card.scanned", {"i": "recent"})
        gone = await prune(db, timedelta(days=90))
        async with db.read() as conn:
            left = await events_after(conn, viewer=None, after=None)
        await db.close()
        return gone, left

    gone, left = asyncio.run(scenario())
    assert gone == 1200 and [e.data for e in left] == [{"i": "recent"}]
