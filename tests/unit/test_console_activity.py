"""The console's Activity page (SPEC §9: admins the team's events, members their own; who did
what when; filterable by type; paged newest first) and what its script reads to keep a card's
counts live: the stream's console door and a card's counts. The live counts in a browser are
tested in tests/browser/test_console_live_browser.py."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from tests.support.app import PHONE_UA, create_card, flush_counters, register
from tests.support.console import log_in


@pytest.fixture
def team(client):
    people = {name: register(client) for name in ("admin", "member", "other")}
    for name, person in people.items():
        person["card"] = create_card(client, person["headers"], fullName=f"{name.title()} Card")
    return people


@contextlib.contextmanager
def session(client: TestClient, person: dict) -> Iterator[TestClient]:
    """The client logged in to the console as `person` (and logged out after)."""
    client.cookies.clear()
    log_in(client, person["user"]["email"])
    yield client
    client.cookies.clear()


def rows(html: str) -> list[tuple[str, str, str, str]]:
    """(type, who, what, about) of each row of the Activity table."""
    found = re.findall(
        r'<tr data-event-type="([^"]+)">\s*<td data-label="When">.*?</td>\s*<td data-label="Who">(.*?)</td>\s*'
        r'<td data-label="What">(.*?)</td>\s*<td data-label="About">(.*?)</td>', html, re.S,
    )
    return [(kind, *(re.sub(r"<[^>]+>", "", cell).strip() for cell in cells)) for kind, *cells in found]


@pytest.mark.parametrize(("viewer", "sees"), [("admin", {"Admin Card", "Member Card", "Other Card"}), ("member", {"Member Card"})])
def test_activity_shows_an_admin_the_team_and_a_member_their_own(client, team, viewer, sees):
    with session(client, team[viewer]) as browser:
        page = browser.get("/app/activity")
        assert page.status_code == 200
        assert 'href="/app/activity" aria-current="page"' in page.text  # the nav item
        created = {about for kind, _, _, about in rows(page.text) if kind == "card.created"}
        assert created == sees
        who = {who for kind, who, _, about in rows(page.text) if about == "Member Card"}
        assert who == {team["member"]["user"]["email"]}  # the actor's email
        assert ("card.created", team["member"]["user"]["email"], "created a card", "Member Card") in rows(page.text)


def test_activity_filters_by_type_and_pages_newest_first(client, team):
    with session(client, team["admin"]) as browser:
        only = rows(browser.get("/app/activity?type=user.registered").text)
        assert [kind for kind, *_ in only] == ["user.registered"] * 3
        assert [about for *_, about in only] == [team[name]["user"]["email"] for name in ("other", "member", "admin")]
        assert browser.get("/app/activity?type=").status_code == 200  # "Everything"
        assert browser.get("/app/activity?type=card.exploded").status_code == 422
        assert browser.get("/app/activity?cursor=<x>").status_code in (400, 422)
        for number in range(55):
            create_card(client, team["member"]["headers"], fullName=f"Card {number}")
        first = browser.get("/app/activity?type=card.created")
        cursor = re.search(r'cursor=([0-9A-Z]{26})"', first.text).group(1)
        assert [about for *_, about in rows(first.text)][:2] == ["Card 54", "Card 53"] and len(rows(first.text)) == 50
        older = rows(browser.get(f"/app/activity?type=card.created&cursor={cursor}").text)
        assert [about for *_, about in older] == [f"Card {n}" for n in range(4, -1, -1)] + ["Other Card", "Member Card", "Admin Card"]


def test_scans_show_as_visitors_with_their_counts_and_a_deleted_card_unlinked(client, team):
    card = team["member"]["card"]
    member_id = team["member"]["user"]["userId"]

    async def scanned():  # as the counters' flush records it (its data: app/public/counters.py)
        async with client.app.state.db.write() as tx:
            await tx.emit("card.scanned", {"cardId": card["cardId"], "slug": card["slug"], "scans": 2, "views": 1, "saves": 0,
                                           "bySource": {"qr": {"scans": 2}}, "byDevice": {}, "byCountry": {}}, user_id=member_id)

    client.blocking_portal.call(scanned)
    assert client.delete(f"/v1/cards/{card['cardId']}", headers=team["member"]["headers"]).status_code == 204
    with session(client, team["member"]) as browser:
        html = browser.get("/app/activity").text
    assert rows(html)[:2] == [("card.deleted", team["member"]["user"]["email"], "deleted a card", "Member Card"),
                              ("card.scanned", "Visitors", "scanned or viewed (2 scans, 1 view)", card["slug"])]
    assert html.count(f'href="/app/cards/{card["cardId"]}"') == 2  # the scan and the creation link; the deletion does not


def test_the_card_page_and_its_stats_mark_the_counts_the_script_keeps_live(client, team):
    card = team["member"]["card"]
    with session(client, team["member"]) as browser:
        for path, counts in ((f"/app/cards/{card['cardId']}", "/counts"), (f"/app/cards/{card['cardId']}/stats?days=7", "/counts?days=7")):
            html = browser.get(path).text
            box = re.search(r'data-live-card="([^"]+)" data-live-counts="([^"]+)" data-live-after="([0-9A-Z]{26})"', html)
            assert box and box.group(1) == card["cardId"] and box.group(2) == f"/app/cards/{card['cardId']}{counts}"
            assert {kind: True for kind in re.findall(r'data-live-count="(\w+)"', html)} == {"scans": True, "views": True, "saves": True}
        client.get(f"/c/{card['slug']}", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
        # Not flushed yet: the card page's count includes it, as the page draws it.
        assert browser.get(f"/app/cards/{card['cardId']}/counts").json() == {"scans": 1, "views": 0, "saves": 0}
        flush_counters(client)
        assert browser.get(f"/app/cards/{card['cardId']}/counts?days=30").json()["scans"] == 1
        assert browser.get(f"/app/cards/{team['admin']['card']['cardId']}/counts").status_code == 404  # not theirs


def test_the_console_stream_needs_a_session(client, team):
    response = client.get("/app/events/stream", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/app/login")
    with session(client, team["member"]) as browser:
        browser.app.state.event_streams.per_user = 0  # past the bound: the friendly 429 before any stream starts
        assert browser.get("/app/events/stream").status_code == 429
        assert browser.get("/app/events/stream?type=nope").status_code == 422
