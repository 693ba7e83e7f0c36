"""GET /v1/events (SPEC §9): who sees which events, the type filter, the cursor (oldest
first after `after`), and the problems for bad parameters and missing credentials.
The live stream is tested against a real server (tests/live/test_event_stream.py)."""

from __future__ import annotations

import pytest

from tests.support.app import assert_problem, create_card, register


@pytest.fixture
def team(client):
    """An admin (the first account) and two members, each with a card."""
    people = {name: register(client) for name in ("admin", "member", "other")}
    for name, person in people.items():
        person["card"] = create_card(client, person["headers"], fullName=f"{name} card")
    return people


def events(client, person, query: str = "") -> dict:
    response = client.get(f"/v1/events{query}", headers=person["headers"])
    assert response.status_code == 200, response.text
    return response.json()


def cards_created(page: dict) -> set[str]:
    return {item["data"]["cardId"] for item in page["items"] if item["type"] == "card.created"}


@pytest.mark.parametrize(("viewer", "sees", "not_sees"), [
    ("member", {"member"}, {"admin", "other"}),
    ("other", {"other"}, {"admin", "member"}),
    ("admin", {"admin", "member", "other"}, set()),
])
def test_a_member_sees_their_own_events_and_an_admin_everyone_s(client, team, viewer, sees, not_sees):
    seen = cards_created(events(client, team[viewer]))
    assert {team[name]["card"]["cardId"] for name in sees} <= seen
    assert not seen & {team[name]["card"]["cardId"] for name in not_sees}
    registered = {item["data"]["userId"] for item in events(client, team[viewer], "?type=user.registered")["items"]}
    assert registered == {team[name]["user"]["userId"] for name in sees}


def test_an_event_has_its_public_shape(client, team):
    item = events(client, team["member"], "?type=card.created")["items"][0]
    assert set(item) == {"eventId", "type", "occurredAt", "actorId", "data"}
    assert item["actorId"] == team["member"]["user"]["userId"]
    assert item["occurredAt"].endswith("Z") and len(item["eventId"]) == 26


@pytest.mark.parametrize("query", ["?type=card.created,user.registered", "?type=card.created&type=user.registered",
                                   "?type=card.created,%20user.registered"])
def test_types_repeat_or_are_separated_by_commas(client, team, query):
    items = events(client, team["admin"], query)["items"]
    assert {item["type"] for item in items} == {"card.created", "user.registered"} and len(items) == 6
    assert {item["type"] for item in events(client, team["admin"], "?type=card.created")["items"]} == {"card.created"}


def test_pages_run_oldest_first_after_the_cursor_and_a_poller_resumes_from_the_last_id(client, team):
    admin = team["admin"]
    everything = events(client, admin, "?limit=100")
    assert everything["nextCursor"] is None
    ids = [item["eventId"] for item in everything["items"]]
    assert ids == sorted(ids) and len(ids) == 6
    pages, cursor = [], ""
    while True:
        page = events(client, admin, f"?limit=4{cursor}")
        pages.append([item["eventId"] for item in page["items"]])
        if page["nextCursor"] is None:
            break
        assert page["nextCursor"] == page["items"][-1]["eventId"]
        cursor = f"&after={page['nextCursor']}"
    assert pages == [ids[:4], ids[4:]]
    # Caught up: nothing after the last one, until something happens.
    assert events(client, admin, f"?after={ids[-1]}") == {"items": [], "nextCursor": None}
    card = create_card(client, team["member"]["headers"])
    new = events(client, admin, f"?after={ids[-1]}")["items"]
    assert [(item["type"], item["data"]["cardId"]) for item in new] == [("card.created", card["cardId"])]


@pytest.mark.parametrize(("query", "field"), [
    ("?type=card.exploded", "type"), ("?type=card.created,nope", "type"), ("?type=CARD.CREATED", "type"),
    ("?after=not-an-id", "after"), ("?after=01M98G95G71ZSEPGPC5PY6Q1RU", "after"),  # U is not in Crockford's alphabet
    ("?limit=0", "limit"), ("?limit=101", "limit"), ("?limit=many", "limit"),
])
def test_bad_parameters_are_422_naming_the_field(client, user, query, field):
    paths = ["/v1/events"] + ([] if field == "limit" else ["/v1/events/stream"])  # the stream has no pages
    for path in paths:
        body = assert_problem(client.get(path + query, headers=user["headers"]), 422)
        assert [error["field"] for error in body["errors"]] == [field]


def test_a_bad_last_event_id_is_422(client, user):
    response = client.get("/v1/events/stream", headers={**user["headers"], "Last-Event-ID": "<script>"})
    assert_problem(response, 422)


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/stream"])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nonsense"}, {"X-API-Key": "qrc_nonsense"}])
def test_without_valid_credentials_it_is_401(client, path, headers):
    assert_problem(client.get(path, headers=headers), 401)


def test_an_api_key_reads_the_events_of_its_account(client, team):
    key = client.post("/v1/api-keys", json={"name": "crm"}, headers=team["member"]["headers"]).json()["key"]
    response = client.get("/v1/events?type=card.created", headers={"X-API-Key": key})
    assert response.status_code == 200 and cards_created(response.json()) == {team["member"]["card"]["cardId"]}


def test_the_stream_refuses_a_member_past_the_bound_before_it_starts(client, user):
    client.app.state.event_streams.per_user = 0
    assert_problem(client.get("/v1/events/stream", headers=user["headers"]), 429)
