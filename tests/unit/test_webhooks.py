"""Webhooks (SPEC §9): the API, signing checked with the `standardwebhooks` package, who
gets which events, the retry schedule, 410 and five days of failures disabling an
endpoint, the delivery log. The sender runs in the app's lifespan against the real
database; the receiver is in process (tests/support/webhooks.py, given to the sender in place of its HTTP client), so
no server is started here: the loopback receiver is the live tier's (tests/live/test_webhooks.py)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

import pytest
from litestar.testing import TestClient
from standardwebhooks import Webhook as StandardWebhook

from app.events import sender, webhooks
from tests.support.app import assert_problem, create_card, make_settings, metric, register
from tests.support.db import execute, query
from tests.support.waiting import wait_until
from tests.support.webhooks import Receiver

FAST = (0, 0, 0, 0, 0, 0, 0)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path, webhook_allow_private=True, webhook_retry_schedule=FAST)


@pytest.fixture
def app(settings, receiver, app_of):
    app = app_of(settings)
    app.state.webhook_sender.post = receiver.post
    return app


def add_webhook(client, headers, url, events=("*",), **extra) -> dict:
    response = client.post("/v1/webhooks", json={"url": url, "events": list(events), **extra}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def deliveries(client, headers, webhook_id) -> list[dict]:
    response = client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def disabled(client, headers, webhook_id) -> dict | None:
    webhook = client.get(f"/v1/webhooks/{webhook_id}", headers=headers).json()
    return None if webhook["enabled"] else webhook


def verify(secret: str, message) -> dict:
    """What standardwebhooks makes of the message: raises when no signature is good."""
    return StandardWebhook(secret).verify(message.body, message.headers)


# --- the API -------------------------------------------------------------------------


def test_a_webhook_is_created_with_its_secret_shown_once_then_read_changed_and_deleted(client, user, receiver):
    headers = user["headers"]
    created = add_webhook(client, headers, receiver.url, ["card.created", "lead.captured"], description="CRM")
    assert created["enabled"] is True and created["events"] == ["card.created", "lead.captured"]
    assert created["secret"].startswith("whsec_") and len(base64.b64decode(created["secret"][6:])) >= 24
    listed = client.get("/v1/webhooks", headers=headers).json()
    assert [w["webhookId"] for w in listed] == [created["webhookId"]]
    assert "secret" not in json.dumps(listed)
    one = client.get(f"/v1/webhooks/{created['webhookId']}", headers=headers).json()
    assert one["url"] == receiver.url and one["description"] == "CRM" and "secret" not in one
    changed = client.patch(f"/v1/webhooks/{created['webhookId']}", json={"events": ["*"], "enabled": False, "description": None},
                           headers=headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["*"] and changed.json()["enabled"] is False and changed.json()["description"] is None
    assert client.delete(f"/v1/webhooks/{created['webhookId']}", headers=headers).status_code == 204
    assert_problem(client.get(f"/v1/webhooks/{created['webhookId']}", headers=headers), 404)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "", None), ("PATCH", "", {"enabled": False}), ("DELETE", "", None), ("POST", "/test", None),
    ("POST", "/rotate-secret", None), ("GET", "/deliveries", None), ("POST", "/deliveries/{delivery}/retry", None),
])
def test_another_accounts_webhook_is_not_found(client, user, receiver, method, path, body):
    """Owner-only, admins included (the first account registered is the admin)."""
    member = register(client)
    hook = add_webhook(client, member["headers"], receiver.url)
    delivery = client.post(f"/v1/webhooks/{hook['webhookId']}/test", headers=member["headers"]).json()["deliveryId"]
    url = f"/v1/webhooks/{hook['webhookId']}" + path.format(delivery=delivery)
    assert_problem(client.request(method, url, json=body, headers=user["headers"]), 404)
    assert client.get(f"/v1/webhooks/{hook['webhookId']}", headers=member["headers"]).json()["enabled"] is True


@pytest.mark.parametrize(("body", "field"), [
    ({"events": ["*"]}, "url"),
    ({"url": "ftp://example.com/x", "events": ["*"]}, "url"),
    ({"url": "https://user:pw@example.com/x", "events": ["*"]}, "url"),
    ({"url": "https://bücher.example/x", "events": ["*"]}, "url"),  # punycode it: xn--bcher-kva.example
    ({"url": "https://example.com/日本", "events": ["*"]}, "url"),
    ({"url": "https://example.com/x"}, "events"),
    ({"url": "https://example.com/x", "events": []}, "events"),
    ({"url": "https://example.com/x", "events": ["card.exploded"]}, "events"),
    ({"url": "https://example.com/x", "events": ["*", "card.created"]}, "events"),
    ({"url": "https://example.com/x", "events": ["*"], "description": "a\nb"}, "description"),
    ({"url": "https://example.com/x", "events": ["*"], "secret": "mine"}, "secret"),
])
def test_bad_input_is_a_422_naming_the_field(client, user, body, field):
    problem = assert_problem(client.post("/v1/webhooks", json=body, headers=user["headers"]), 422)
    # An unknown field is named in the message (the house's way: tests/unit/test_hostile.py).
    assert any(field in (error["field"], *error["message"].split("`")) for error in problem["errors"]), problem
    assert client.get("/v1/webhooks", headers=user["headers"]).json() == []


# --- the SSRF guard ------------------------------------------------------------------

REFUSED = [
    "http://127.0.0.1/hook", "http://127.8.9.10:8080/", "http://10.1.2.3/", "http://172.16.0.1/", "http://172.31.255.254/",
    "http://192.168.1.10/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:169.254.169.254]/", "http://[::ffff:10.0.0.1]/", "http://0.0.0.0/",
    "http://[::]/", "http://224.0.0.1/", "http://240.0.0.1/", "http://100.64.0.1/", "http://[fc00::1]/",
    "http://localhost:8080/hook", "http://LOCALHOST./x",
]


@pytest.mark.parametrize("url", REFUSED)
def test_the_ssrf_guard_refuses_what_is_not_public(tmp_path, url, app_of):
    with TestClient(app_of(make_settings(tmp_path)), base_url="https://qr.example.test") as client:
        owner = register(client)
        problem = assert_problem(client.post("/v1/webhooks", json={"url": url, "events": ["*"]}, headers=owner["headers"]), 422)
        assert problem["errors"][0]["field"] == "url"
        assert client.get("/v1/webhooks", headers=owner["headers"]).json() == []


def test_a_public_address_is_allowed(tmp_path, app_of):
    with TestClient(app_of(make_settings(tmp_path)), base_url="https://qr.example.test") as client:
        owner = register(client)
        add_webhook(client, owner["headers"], "https://93.184.215.14/hooks?team=1")
        add_webhook(client, owner["headers"], "http://[2606:4700::1111]:8080/")


@pytest.mark.parametrize(("url", "allowed"), [
    ("http://127.0.0.1:9/", True), ("http://localhost/", True), ("http://10.0.0.7/", True), ("http://[::1]/", True),
    ("http://169.254.169.254/", False), ("http://[fe80::1]/", False), ("http://224.0.0.1/", False), ("http://0.0.0.0/", False),
])
def test_webhook_allow_private_lets_the_team_network_in_but_never_the_metadata_address(client, user, url, allowed):
    response = client.post("/v1/webhooks", json={"url": url, "events": ["*"]}, headers=user["headers"])
    assert response.status_code == (201 if allowed else 422), response.text


def test_the_guard_is_applied_again_at_delivery_and_a_refused_address_is_never_connected(tmp_path, receiver, app_of):
    """An endpoint whose host now resolves to a refused address (DNS rebinding), as the stored URL stands for here."""
    settings = make_settings(tmp_path)  # WEBHOOK_ALLOW_PRIVATE off
    app = app_of(settings)
    app.state.webhook_sender.post = receiver.post
    with TestClient(app, base_url="https://qr.example.test") as client:
        owner = register(client)
        hook = add_webhook(client, owner["headers"], "https://93.184.215.14/hook")
        execute(settings, "UPDATE webhooks SET url = ?", ("http://localhost:9/hook",))
        client.post(f"/v1/webhooks/{hook['webhookId']}/test", headers=owner["headers"])
        [delivery] = wait_until(lambda: [d for d in deliveries(client, owner["headers"], hook["webhookId"]) if d["attempts"]],
                                what="the attempt")
        assert "SSRF guard" in delivery["lastError"] and delivery["responseStatus"] is None
        assert receiver.received == []


def test_the_sender_connects_to_the_checked_address_keeping_the_host_name(client, user, receiver):
    hook = add_webhook(client, user["headers"], f"http://localhost:{receiver.port}/hook?x=1")
    client.post(f"/v1/webhooks/{hook['webhookId']}/test", headers=user["headers"])
    [message] = receiver.wait_for(1)
    assert message.url in (f"http://127.0.0.1:{receiver.port}/hook?x=1", f"http://[::1]:{receiver.port}/hook?x=1")
    assert message.headers["host"] == f"localhost:{receiver.port}"
    assert message.server_name is None


def test_over_https_the_host_name_is_the_tls_server_name(client, user, receiver):
    """The checked address is reached, and the host name is the TLS server name (SNI, and the
    name the certificate must carry: tests/live/test_webhook_http.py)."""
    hook = add_webhook(client, user["headers"], "https://localhost/hook")
    client.post(f"/v1/webhooks/{hook['webhookId']}/test", headers=user["headers"])
    [message] = receiver.wait_for(1)
    assert message.url in ("https://127.0.0.1:443/hook", "https://[::1]:443/hook")
    assert message.headers["host"] == "localhost" and message.server_name == "localhost"


# --- what is sent, and signed --------------------------------------------------------


def test_an_event_arrives_signed_as_standard_webhooks_says(client, user, receiver):
    hook = add_webhook(client, user["headers"], receiver.url, ["card.created"])
    card = create_card(client, user["headers"], fullName="Ada Lovelace")
    [message] = receiver.wait_for(1)
    assert message.headers["content-type"] == "application/json"
    payload = verify(hook["secret"], message)
    assert payload["type"] == "card.created" and payload["data"]["cardId"] == card["cardId"]
    assert set(payload) == {"type", "timestamp", "data"}
    [event] = query(client.app.state.settings, "SELECT event_id FROM events WHERE type = 'card.created'")
    assert message.id == "msg_" + event[0]
    assert abs(int(message.headers["webhook-timestamp"]) - datetime.now().timestamp()) < 60
    with pytest.raises(Exception, match="(?i)signature"):
        StandardWebhook(webhooks.new_secret()).verify(message.body, message.headers)


def test_after_a_rotation_both_secrets_sign_for_a_day(client, user, receiver):
    hook = add_webhook(client, user["headers"], receiver.url)
    rotated = client.post(f"/v1/webhooks/{hook['webhookId']}/rotate-secret", headers=user["headers"])
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != hook["secret"] and new.startswith("whsec_")
    client.post(f"/v1/webhooks/{hook['webhookId']}/test", headers=user["headers"])
    [message] = receiver.wait_for(1)
    assert len(message.headers["webhook-signature"].split(" ")) == 2
    assert verify(new, message)["type"] == "webhook.test"
    assert verify(hook["secret"], message)["data"]["webhookId"] == hook["webhookId"]
    # A day later only the new one signs.
    expired = (datetime.now() - timedelta(seconds=1)).isoformat() + "Z"
    execute(client.app.state.settings, "UPDATE webhooks SET previous_secret_until = ?", (expired,))
    client.post(f"/v1/webhooks/{hook['webhookId']}/test", headers=user["headers"])
    message = receiver.wait_for(2)[1]
    assert len(message.headers["webhook-signature"].split(" ")) == 1
    assert verify(new, message)
    with pytest.raises(Exception, match="(?i)signature"):
        verify(hook["secret"], message)


def test_a_members_webhook_gets_their_events_and_an_admins_all(client, user, receiver):
    member = register(client)
    admin_hook = add_webhook(client, user["headers"], receiver.url + "?who=admin", ["card.created"])
    member_hook = add_webhook(client, member["headers"], receiver.url + "?who=member", ["card.created"])
    create_card(client, user["headers"], fullName="Admin's")
    create_card(client, member["headers"], fullName="Member's")
    receiver.wait_for(3)
    got = {(m.url.rsplit("=", 1)[1], m.json()["data"]["fullName"]) for m in receiver.received}
    assert got == {("admin", "Admin's"), ("admin", "Member's"), ("member", "Member's")}
    assert admin_hook["webhookId"] != member_hook["webhookId"]


def test_only_the_chosen_types_are_sent(client, user, receiver):
    hook = add_webhook(client, user["headers"], receiver.url, ["card.deleted"])
    card = create_card(client, user["headers"])
    client.delete(f"/v1/cards/{card['cardId']}", headers=user["headers"])
    [message] = receiver.wait_for(1)
    assert message.json()["type"] == "card.deleted"
    assert [d["type"] for d in deliveries(client, user["headers"], hook["webhookId"])] == ["card.deleted"]


# --- retries, disabling, the log -------------------------------------------------------


def test_the_retry_schedule(tmp_path):
    schedule = make_settings(tmp_path).webhook_retry_schedule
    assert schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert [webhooks.retry_delay(schedule, n) for n in range(1, 9)] == [5, 300, 1800, 7200, 18000, 36000, 36000, None]


def test_a_failed_attempt_is_retried_after_five_seconds_then_after_the_schedule(tmp_path, receiver, app_of):
    settings = make_settings(tmp_path, webhook_allow_private=True)
    app = app_of(settings)
    app.state.webhook_sender.post = receiver.answer(500).post
    with TestClient(app, base_url="https://qr.example.test") as client:
        owner = register(client)
        hook = add_webhook(client, owner["headers"], receiver.url)
        client.post(f"/v1/webhooks/{hook['webhookId']}/test", headers=owner["headers"])
        [delivery] = wait_until(lambda: [d for d in deliveries(client, owner["headers"], hook["webhookId"]) if d["attempts"]],
                                what="the first attempt")
        assert delivery["status"] == "pending" and delivery["responseStatus"] == 500
        waited = datetime.fromisoformat(delivery["nextAttemptAt"]) - datetime.fromisoformat(delivery["lastAttemptAt"])
        assert waited == timedelta(seconds=5)
        assert client.get(f"/v1/webhooks/{hook['webhookId']}", headers=owner["headers"]).json()["failingSince"]


def test_a_receiver_answering_500_then_200_gets_the_message_on_the_retry_with_the_same_id(client, user, receiver):
    receiver.answer(500, 503)
    hook = add_webhook(client, user["headers"], receiver.url)
    client.post(f"/v1/webhooks/{hook['webhookId']}/test", headers=user["headers"])
    messages = receiver.wait_for(3)
    assert len({m.id for m in messages}) == 1
    [delivery] = wait_until(lambda: [d for d in deliveries(client, user["headers"], hook["webhookId"]) if d["status"] == "succeeded"],
                            what="the delivery to succeed")
    assert delivery["attempts"] == 3 and delivery["responseStatus"] == 200 and delivery["responseBody"] == "ok"
    assert client.get(f"/v1/webhooks/{hook['webhookId']}", headers=user["headers"]).json()["failingSince"] is None


def test_outcomes_that_cannot_be_written_leave_their_deliveries_pending_and_sent_again(client, user, receiver, settings,
                                                                                       monkeypatch):
    """The outcomes of attempts that end together are written in one transaction: when it
    fails, every delivery in it stays pending (attempts 0) and is sent again, same id."""
    monkeypatch.setattr(sender, "RECORD_FAILED_PAUSE", 0.05)
    hook = add_webhook(client, user["headers"], receiver.url, events=["card.created"])
    execute(settings, """CREATE TRIGGER refuse_outcomes BEFORE UPDATE OF status ON webhook_deliveries
                         BEGIN SELECT RAISE(ABORT, 'the disk said no'); END""")
    for n in range(3):
        create_card(client, user["headers"], fullName=f"Card {n}")
    sent = {m.id for m in receiver.wait_for(6)}  # each sent, its outcome refused, sent again
    assert len(sent) == 3
    assert query(settings, "SELECT status, attempts FROM webhook_deliveries") == [("pending", 0)] * 3
    execute(settings, "DROP TRIGGER refuse_outcomes")
    wait_until(lambda: query(settings, "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'") == [(3,)],
               what="every outcome written once the database takes it")
    assert {m.id for m in receiver.received} == sent
    assert [d["attempts"] for d in deliveries(client, user["headers"], hook["webhookId"])] == [1, 1, 1]


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(client, user, receiver):
    receiver.answer(*[(302, {"location": "http://169.254.169.254/latest/meta-data/"}, b"")] * 8)
    hook = add_webhook(client, user["headers"], receiver.url)
    client.post(f"/v1/webhooks/{hook['webhookId']}/test", headers=user["headers"])
    [delivery] = wait_until(lambda: [d for d in deliveries(client, user["headers"], hook["webhookId"]) if d["status"] == "failed"],
                            what="every attempt to fail")
    assert delivery["attempts"] == 8 and delivery["responseStatus"] == 302
    assert "redirects are not followed" in delivery["lastError"]
    assert [m.url for m in receiver.received] == [receiver.url] * 8  # the Location was never asked for


def test_a_410_disables_the_endpoint_with_an_email_and_a_system_alert(client, user, receiver):
    receiver.answer(410)
    hook = add_webhook(client, user["headers"], receiver.url)
    client.post(f"/v1/webhooks/{hook['webhookId']}/test", headers=user["headers"])
    receiver.wait_for(1)
    webhook = wait_until(lambda: disabled(client, user["headers"], hook["webhookId"]), what="the endpoint disabled")
    assert "410" in webhook["disabledReason"]
    [delivery] = deliveries(client, user["headers"], hook["webhookId"])
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    settings = client.app.state.settings
    assert query(settings, "SELECT kind FROM email_outbox WHERE kind = 'webhook_disabled'") == [("webhook_disabled",)]
    [(data,)] = query(settings, "SELECT data FROM events WHERE type = 'system.alert' AND data ->> 'alert' = 'webhook_disabled'")
    alert = json.loads(data)
    assert alert["webhookId"] == hook["webhookId"] and alert["severity"] == "warning" and "410" in alert["message"]
    assert metric(client, "webhooks_disabled") == 1  # the QRContactWebhookDisabled alert's gauge
    # Events while it is disabled are not sent to it; once enabled, the next ones are.
    create_card(client, user["headers"], fullName="While disabled")
    enabled = client.patch(f"/v1/webhooks/{hook['webhookId']}", json={"enabled": True}, headers=user["headers"]).json()
    assert enabled["enabled"] and enabled["disabledReason"] is None
    assert metric(client, "webhooks_disabled") == 0
    create_card(client, user["headers"], fullName="After")
    message = receiver.wait_for(2)[1]
    assert message.json()["data"]["fullName"] == "After" and len(receiver.received) == 2


def test_five_days_of_failures_disable_the_endpoint(client, user, receiver):
    receiver.answer(500)
    hook = add_webhook(client, user["headers"], receiver.url)
    long_ago = (datetime.now() - timedelta(days=5, minutes=1)).isoformat() + "Z"
    execute(client.app.state.settings, "UPDATE webhooks SET failing_since = ?", (long_ago,))
    client.post(f"/v1/webhooks/{hook['webhookId']}/test", headers=user["headers"])
    webhook = wait_until(lambda: disabled(client, user["headers"], hook["webhookId"]), what="the endpoint disabled")
    assert "5 days" in webhook["disabledReason"]
    settings = client.app.state.settings
    assert query(settings, "SELECT count(*) FROM email_outbox WHERE kind = 'webhook_disabled'") == [(1,)]
    assert query(settings, "SELECT count(*) FROM events WHERE type = 'system.alert' AND data ->> 'alert' = 'webhook_disabled'") \
        == [(1,)]


def test_the_log_keeps_the_first_kilobyte_pages_and_a_failed_delivery_can_be_retried(tmp_path, receiver, app_of):
    settings = make_settings(tmp_path, webhook_allow_private=True, webhook_retry_schedule=(0,))
    app = app_of(settings)
    app.state.webhook_sender.post = receiver.answer(500, 500).post
    receiver.body = b"x" * 5000
    with TestClient(app, base_url="https://qr.example.test") as client:
        owner = register(client)
        hook = add_webhook(client, owner["headers"], receiver.url)
        first = client.post(f"/v1/webhooks/{hook['webhookId']}/test", headers=owner["headers"]).json()
        [failed] = wait_until(lambda: [d for d in deliveries(client, owner["headers"], hook["webhookId"]) if d["status"] == "failed"],
                              what="the delivery to fail")
        assert failed["attempts"] == 2 and failed["responseBody"] == "x" * 1024 and failed["nextAttemptAt"] is None
        assert failed["latencyMs"] >= 0 and failed["lastError"] == "answered 500"
        retried = client.post(f"/v1/webhooks/{hook['webhookId']}/deliveries/{first['deliveryId']}/retry", headers=owner["headers"])
        assert retried.status_code == 202 and retried.json()["status"] == "pending"
        messages = receiver.wait_for(3)
        assert len({m.id for m in messages}) == 1
        done = wait_until(lambda: deliveries(client, owner["headers"], hook["webhookId"])[0]["status"] == "succeeded",
                          what="the retry to succeed")
        assert done
        assert_problem(client.post(f"/v1/webhooks/{hook['webhookId']}/deliveries/{first['deliveryId']}/retry",
                                   headers=owner["headers"]), 409)
        for _ in range(2):
            client.post(f"/v1/webhooks/{hook['webhookId']}/test", headers=owner["headers"])
        page = client.get(f"/v1/webhooks/{hook['webhookId']}/deliveries?limit=2", headers=owner["headers"]).json()
        assert len(page["items"]) == 2 and page["nextCursor"]
        rest = client.get(f"/v1/webhooks/{hook['webhookId']}/deliveries?limit=2&cursor={page['nextCursor']}",
                          headers=owner["headers"]).json()
        assert [d["deliveryId"] for d in rest["items"]] == [first["deliveryId"]] and rest["nextCursor"] is None


def test_events_before_the_first_webhook_are_not_replayed_and_none_is_handed_out_twice(client, user, receiver):
    create_card(client, user["headers"], fullName="Before")
    hook = add_webhook(client, user["headers"], receiver.url, ["card.created"])
    for name in ("One", "Two", "Three"):
        create_card(client, user["headers"], fullName=name)
    receiver.wait_for(3)
    assert sorted(m.json()["data"]["fullName"] for m in receiver.received) == ["One", "Three", "Two"]
    assert len(deliveries(client, user["headers"], hook["webhookId"])) == 3


def test_finished_deliveries_are_kept_as_long_as_events(client, user, receiver):
    hook = add_webhook(client, user["headers"], receiver.url)
    for _ in range(2):
        client.post(f"/v1/webhooks/{hook['webhookId']}/test", headers=user["headers"])
    receiver.wait_for(2)
    wait_until(lambda: all(d["status"] == "succeeded" for d in deliveries(client, user["headers"], hook["webhookId"])),
               what="both delivered")
    settings = client.app.state.settings
    old = (datetime.now() - timedelta(days=91)).isoformat() + "Z"
    execute(settings, "UPDATE webhook_deliveries SET created_at = ? WHERE id = (SELECT min(id) FROM webhook_deliveries)", (old,))
    execute(settings, "INSERT INTO webhook_deliveries (delivery_id, webhook, message_id, type, body, next_attempt_at, created_at) "
                      "SELECT 'old-pending', webhook, 'msg_x', type, body, ?, ? FROM webhook_deliveries LIMIT 1", (old, old))
    client.blocking_portal.call(client.app.state.webhook_sender.tidy)
    assert query(settings, "SELECT count(*), sum(delivery_id = 'old-pending') FROM webhook_deliveries") == [(2, 1)]
