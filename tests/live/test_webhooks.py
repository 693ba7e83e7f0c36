"""Webhooks over real sockets (SPEC §9): the service (LiveServer, or `qrcontact serve` for a
kill -9) and a real receiver on loopback (tests/support/webhooks.py). Retry waits are
short through WEBHOOK_RETRY_SCHEDULE; nothing waits with a sleep, only for the receiver."""

from __future__ import annotations

import signal

import httpx
import pytest
from standardwebhooks import Webhook as StandardWebhook

from app.events.sender import PER_ENDPOINT
from app.sqlite import sqlite3
from tests.support.app import create_card, make_settings, register
from tests.support.live_server import LiveServer
from tests.support.service import Service, sign_up
from tests.support.waiting import wait_until
from tests.support.webhooks import Receiver

QUICK = (1,) * 20  # a second between attempts, twenty times


def rows(database, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(database, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@pytest.fixture
def server(tmp_path):
    server = LiveServer(make_settings(tmp_path, webhook_allow_private=True, webhook_retry_schedule=QUICK))
    yield server
    server.stop()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


def add_webhook(http, headers, url: str, events=("card.created",)) -> dict:
    response = http.post("/v1/webhooks", json={"url": url, "events": list(events)}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_receiver_answering_500_then_200_gets_the_event_on_the_retry(server, receiver):
    receiver.answer(500).serve()
    owner = register(server.http)
    hook = add_webhook(server.http, owner["headers"], receiver.url)
    card = create_card(server.http, owner["headers"], fullName="Retry Me")
    first, second = receiver.wait_for(2)
    assert first.id == second.id and first.body == second.body
    payload = StandardWebhook(hook["secret"]).verify(second.body, second.headers)
    assert payload["type"] == "card.created" and payload["data"]["cardId"] == card["cardId"]
    log = wait_until(lambda: (items := server.http.get(f"/v1/webhooks/{hook['webhookId']}/deliveries", headers=owner["headers"])
                              .json()["items"]) and items[0]["status"] == "succeeded" and items, what="the delivery logged")
    assert log[0]["attempts"] == 2 and log[0]["responseStatus"] == 200


def test_a_receiver_down_for_a_while_gets_everything_once_it_is_up(server, receiver):
    owner = register(server.http)
    add_webhook(server.http, owner["headers"], receiver.url)  # nothing listens there yet
    names = [f"Card {n}" for n in range(12)]
    for name in names:
        create_card(server.http, owner["headers"], fullName=name)
    database = server.app.state.settings.database_path
    wait_until(lambda: rows(database, "SELECT count(*) FROM webhook_deliveries WHERE attempts >= 1 AND status = 'pending'")
               == [(len(names),)], what="every delivery to have failed an attempt")
    receiver.serve()
    messages = receiver.wait_for(len(names), ids=True)
    assert sorted({m.id: m.json()["data"]["fullName"] for m in messages}.values()) == sorted(names)
    wait_until(lambda: rows(database, "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'") == [(len(names),)],
               what="every delivery marked succeeded")


def test_kill_9_mid_delivery_then_restart_every_event_still_arrives(tmp_path, receiver):
    """At least once: what was in flight at the kill is sent again; the receiver dedupes by webhook-id."""
    data = tmp_path / "data"
    service = Service(data, WEBHOOK_ALLOW_PRIVATE="true", WEBHOOK_RETRY_SCHEDULE=",".join(["1s"] * 20))
    gate = receiver.serve().hold()  # answers wait: the first deliveries are in flight when the process dies
    try:
        service.start()
        headers = sign_up(service)
        response = httpx.post(f"{service.url}/v1/webhooks", json={"url": receiver.url, "events": ["card.created"]}, headers=headers)
        assert response.status_code == 201, response.text
        names = [f"Card {n}" for n in range(10)]
        for name in names:
            created = httpx.post(f"{service.url}/v1/cards", json={"fullName": name, "email": "a@example.com"}, headers=headers)
            assert created.status_code == 201, created.text
        receiver.wait_for(1)  # a delivery is in flight, its answer held
        service.stop(signal.SIGKILL)
        in_flight_at_kill = {m.id for m in receiver.received}
        gate.set()
        service.start()
        messages = receiver.wait_for(len(names), ids=True)
        assert sorted({m.id: m.json()["data"]["fullName"] for m in messages}.values()) == sorted(names)
        # What was in flight (its answer held until after the kill) was sent again after the restart.
        arrived = receiver.wait_for(len(names) + len(in_flight_at_kill))
        for message_id in in_flight_at_kill:
            assert len([m for m in arrived if m.id == message_id]) >= 2
        database = data / "qrcontact.db"
        wait_until(lambda: rows(database, "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'") == [(len(names),)],
                   what="every delivery marked succeeded")
        assert service.stop() == 0
    finally:
        gate.set()
        if service.process and service.process.poll() is None:
            service.stop(signal.SIGKILL)


def test_a_slow_receiver_holds_only_its_own_slots(server, receiver):
    """Bounded per endpoint: a receiver that does not answer has PER_ENDPOINT messages in
    flight, and another endpoint gets all of its messages meanwhile."""
    slow = Receiver()
    gate = slow.serve().hold()
    cards = PER_ENDPOINT + 4
    try:
        receiver.serve()
        owner = register(server.http)
        add_webhook(server.http, owner["headers"], slow.url)
        add_webhook(server.http, owner["headers"], receiver.url)
        for n in range(cards):
            create_card(server.http, owner["headers"], fullName=f"Card {n}")
        receiver.wait_for(cards, ids=True)
        assert len(slow.wait_for(PER_ENDPOINT)) == PER_ENDPOINT  # exactly its slots, none past them
    finally:
        gate.set()
        slow.wait_for(cards, ids=True)
        slow.stop()
