"""Fixtures of the unit tier: the app in process only (no server, no subprocess)."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from app.main import create_app
from tests.support.app import create_card, make_settings, register
from tests.support.console import ORIGIN, log_in


@pytest.fixture(scope="module")
def forms_console(tmp_path_factory):
    """One logged-in console with one card and one API key for the whole table: every POST
    in it is refused, so nothing it does changes what the next case sees."""
    settings = make_settings(tmp_path_factory.mktemp("forms"))
    with TestClient(create_app(settings), base_url=ORIGIN) as client:
        user = register(client)
        card = create_card(client, user["headers"])
        key = client.post("/v1/api-keys", json={"name": "kept"}, headers=user["headers"]).json()
        yield client, {"card_id": card["cardId"], "key_id": key["keyId"]}, log_in(client, user["user"]["email"])
