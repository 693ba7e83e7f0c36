"""A first run says what is not set (app/console/first_run.py, SPEC §11): while PUBLIC_BASE_URL
names this machine or SMTP_URL is unset, admins see a banner with the fix on every console
page and Team › System flags it; members never see it; set both, and it is gone."""

from __future__ import annotations

import dataclasses

import pytest
from litestar.testing import TestClient

from app.console import first_run
from tests.support.app import create_card, make_settings, register
from tests.support.console import ORIGIN, log_in

BANNER = 'id="first-run-title"'


@pytest.mark.parametrize(("base_url", "local"), [
    ("http://localhost:8000", True), ("http://127.0.0.1:8000", True), ("http://[::1]:8000", True),
    ("http://0.0.0.0:8000", True), ("http://cards.localhost", True), ("http://LOCALHOST", True),
    ("https://cards.example.com", False), ("http://192.168.1.20:8000", False), ("http://localhost.example.com", False),
])
def test_a_base_url_on_this_machine_is_a_gap(tmp_path, base_url, local):
    settings = make_settings(tmp_path, public_base_url=base_url, smtp_url="smtp://mail.example.com:587")
    assert [gap.setting for gap in first_run.gaps(settings)] == (["PUBLIC_BASE_URL"] if local else [])


def test_the_admin_sees_the_banner_with_the_fix_a_member_does_not_and_it_goes_once_set(tmp_path, app_of):
    # The quickstart's settings: a base URL on this machine, no SMTP.
    settings = make_settings(tmp_path, public_base_url="http://localhost:8000", smtp_url=None)
    with TestClient(app_of(settings), base_url=ORIGIN) as client:
        admin, member = register(client), register(client)  # the first account is the admin
        log_in(client, member["user"]["email"])
        for path in ["/app/cards", "/app/account"]:
            assert BANNER not in client.get(path).text, path
        client.cookies.clear()
        log_in(client, admin["user"]["email"])
        for path in ["/app/cards", "/app/account"]:
            page = client.get(path).text
            assert BANNER in page, path
            assert "PUBLIC_BASE_URL" in page and "HOST=0.0.0.0" in page and "point at this machine" in page
            assert "SMTP_URL" in page and str(settings.outbox_dir) in page
        system = client.get("/app/team/system").text
        assert "This machine only" in system and "Not sent" in system
        # The code shown full screen, for a phone held up to another, stays bare.
        card = create_card(client, admin["headers"])
        shown = client.get(f"/app/cards/{card['cardId']}/show")
        assert shown.status_code == 200 and BANNER not in shown.text
        # Restarted with both set (the pages read the app's settings): gone; with one of them, still there.
        client.app.state.settings = dataclasses.replace(
            settings, public_base_url="https://cards.example.com", smtp_url="smtp://127.0.0.1:9")
        assert BANNER not in client.get("/app/cards").text
        client.app.state.settings = dataclasses.replace(settings, public_base_url="https://cards.example.com")
        page = client.get("/app/cards").text
        assert BANNER in page and "SMTP_URL" in page and "PUBLIC_BASE_URL" not in page
