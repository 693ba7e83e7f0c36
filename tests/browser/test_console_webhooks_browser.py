"""The Webhooks pages in real Chromium against a live `qrcontact serve` (with
WEBHOOK_ALLOW_PRIVATE=true, for the receiver on loopback): add one and see its secret once,
send a test that the receiver gets, see it delivered in the log, rotate the secret, turn
it off, delete it. Axe and screenshots on every page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect
from standardwebhooks import Webhook as StandardWebhook

from tests.support.browser import check_page, log_in, new_page, register_account
from tests.support.service import Service
from tests.support.webhooks import Receiver


@pytest.fixture(scope="module")
def console_server(tmp_path_factory) -> Iterator[Service]:
    service = Service(tmp_path_factory.mktemp("console-webhooks") / "data", REPLICA_URL="off",
                      RATE_LIMIT_PER_MINUTE="100000", WEBHOOK_ALLOW_PRIVATE="true").start()
    yield service
    service.stop()


def test_add_ping_rotate_turn_off_and_delete_a_webhook(browser, console_server):
    receiver = Receiver().serve()
    try:
        email = register_account(console_server)
        page = new_page(browser, console_server)
        log_in(page, email)
        page.goto("/app/account")
        page.get_by_role("link", name="Manage webhooks").click()
        expect(page.get_by_text("No webhooks yet")).to_be_visible()
        check_page(page, "webhooks-empty")

        page.get_by_label("URL").fill("http://169.254.169.254/latest/meta-data/")
        page.get_by_role("button", name="Add webhook").click()
        expect(page.locator("#url-error")).to_contain_text("link-local")
        check_page(page, "webhooks-refused")

        page.get_by_label("URL").fill(receiver.url)
        page.get_by_label("All events, including kinds added later").uncheck()
        page.get_by_label("card.created").check()
        page.get_by_label("Description").fill("Our CRM")
        page.get_by_role("button", name="Add webhook").click()
        secret = page.locator("#new-secret").inner_text()
        assert secret.startswith("whsec_")
        check_page(page, "webhooks-created")

        page.get_by_role("link", name="Open it and send a test").click()
        page.get_by_role("button", name="Send a test").click()
        expect(page.get_by_role("status")).to_contain_text("Test message queued")
        [message] = receiver.wait_for(1)
        assert StandardWebhook(secret).verify(message.body, message.headers)["type"] == "webhook.test"
        page.reload()
        expect(page.get_by_role("cell", name="Delivered")).to_be_visible()
        check_page(page, "webhook-delivered")

        page.get_by_role("button", name="Rotate the secret").click()
        new_secret = page.locator("#new-secret").inner_text()
        assert new_secret.startswith("whsec_") and new_secret != secret
        check_page(page, "webhook-rotated")

        page.get_by_role("button", name="Turn off").click()
        expect(page.get_by_role("status")).to_contain_text("Webhook turned off")
        expect(page.get_by_role("button", name="Turn on")).to_be_visible()

        page.get_by_role("link", name="Delete").click()
        check_page(page, "webhook-delete")
        page.get_by_role("button", name="Delete the webhook").click()
        expect(page.get_by_role("status")).to_contain_text("Webhook deleted")
        expect(page.get_by_text("No webhooks yet")).to_be_visible()
        page.context.close()
    finally:
        receiver.stop()
