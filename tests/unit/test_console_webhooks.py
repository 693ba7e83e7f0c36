"""The console's Webhooks pages under Account, in process over a real database with the
in-process receiver: add one (the secret shown once), see a refused URL next to its field,
send a test and see it in the log, retry, rotate, turn off and on, delete; another
account's webhook is not found."""

from __future__ import annotations

import html
import re

import pytest
from standardwebhooks import Webhook as StandardWebhook

from tests.support.app import make_settings, register
from tests.support.console import errors_of, log_in, post_form
from tests.support.waiting import wait_until
from tests.support.webhooks import Receiver


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path, webhook_allow_private=True, webhook_retry_schedule=(0,))


@pytest.fixture
def app(settings, receiver, app_of):
    app = app_of(settings)
    app.state.webhook_sender.post = receiver.post
    return app


@pytest.fixture
def account(client):
    auth = register(client)
    return auth, log_in(client, auth["user"]["email"])


def test_webhooks_pages_add_test_retry_rotate_toggle_and_delete(client, account, receiver):
    auth, csrf = account
    assert "Manage webhooks" in client.get("/app/account").text
    page = client.get("/app/account/webhooks")
    assert page.status_code == 200 and "No webhooks yet" in page.text

    bad = post_form(client, "/app/account/webhooks", csrf, url="http://169.254.169.254/latest/", **{"all-events": "yes"})
    assert bad.status_code == 422 and "link-local" in html.unescape(errors_of(bad.text)["url"])
    none = post_form(client, "/app/account/webhooks", csrf, url=receiver.url)
    assert none.status_code == 422 and "events" in errors_of(none.text)

    created = post_form(client, "/app/account/webhooks", csrf, url=receiver.url, description="CRM",
                        **{"event-card.created": "yes", "event-lead.captured": "yes"})
    assert created.status_code == 201 and "only time it is shown" in created.text
    secret = re.search(r'<code id="new-secret">([^<]+)</code>', created.text).group(1)
    listed = client.get("/app/account/webhooks").text
    assert secret not in listed and receiver.url in listed
    (webhook_id,) = set(re.findall(r"/app/account/webhooks/([0-9a-f]{32})", listed))
    path = f"/app/account/webhooks/{webhook_id}"

    receiver.answer(500, 500)
    sent = post_form(client, f"{path}/test", csrf)
    assert sent.status_code == 303 and sent.headers["location"] == path
    StandardWebhook(secret).verify(receiver.wait_for(1)[0].body, receiver.received[0].headers)
    failed = wait_until(lambda: "Failed" in (text := client.get(path).text) and text, what="the failed delivery in the log")
    assert "answered 500" in failed
    (delivery_id,) = re.findall(rf"{path}/deliveries/([0-9a-f]+)/retry", failed)
    assert post_form(client, f"{path}/deliveries/{delivery_id}/retry", csrf).status_code == 303
    receiver.wait_for(3)
    wait_until(lambda: "Delivered" in client.get(path).text, what="the retry delivered")

    rotated = post_form(client, f"{path}/rotate", csrf)
    assert rotated.status_code == 200 and "only time it is shown" in rotated.text
    new_secret = re.search(r'<code id="new-secret">([^<]+)</code>', rotated.text).group(1)
    assert new_secret != secret and new_secret not in client.get(path).text

    assert post_form(client, f"{path}/enabled", csrf, enabled="no").status_code == 303
    assert "Turn on" in client.get(path).text
    assert post_form(client, f"{path}/enabled", csrf, enabled="yes").status_code == 303
    assert "Turn off" in client.get(path).text

    assert "cannot be undone" in client.get(f"{path}/delete").text
    deleted = post_form(client, f"{path}/delete", csrf)
    assert deleted.status_code == 303 and deleted.headers["location"] == "/app/account/webhooks"
    assert client.get(path).status_code == 404
    assert post_form(client, f"{path}/test", None).status_code in (403, 404)


def test_another_accounts_webhook_is_not_found_in_the_console(client, account, receiver):
    _, csrf = account
    other = register(client)
    theirs = client.post("/v1/webhooks", json={"url": receiver.url, "events": ["*"]}, headers=other["headers"]).json()
    path = f"/app/account/webhooks/{theirs['webhookId']}"
    assert client.get(path).status_code == 404
    for action in ("test", "rotate", "delete"):
        assert post_form(client, f"{path}/{action}", csrf).status_code == 404
    assert post_form(client, f"{path}/enabled", csrf, enabled="no").status_code == 404
    assert client.get(f"/v1/webhooks/{theirs['webhookId']}", headers=other["headers"]).json()["enabled"] is True
