"""Sharing over HTTP: the four channels, duplicates, recipient checks, the invitation
funnel driven through its tracked links with real and bot user agents, invitation tokens
at registration, and who may see what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from litestar.testing import TestClient

from app.sharing import sharing
from app.tokens import token_hash
from tests.support.app import (
    PASSWORD,
    PHONE_UA,
    assert_problem,
    create_card,
    flush_counters,
    make_settings,
    register,
    unique_email,
)
from tests.support.db import execute, query
from tests.support.sharing import LINK, invitations, share, token_of, viral

# --- the channels --------------------------------------------------------------------


def test_each_channel_answers_as_the_spec_says(client, user, settings):
    card = create_card(client, user["headers"], fullName="Jane Doe")
    before = {channel: viral("sent", channel) for channel in ("sms", "whatsapp", "linkedin")}
    response = share(
        client, user, card,
        {"channel": "email", "to": "friend@example.com"},
        {"channel": "sms", "to": "+44 20 7946 0958"},
        {"channel": "whatsapp", "to": "+1 (555) 010-0100"},
        {"channel": "linkedin"},
        message="Great to meet you & see you soon",
    )
    assert response.status_code == 202
    email, sms, whatsapp, linkedin = response.json()["invitations"]
    assert {k: email[k] for k in ("channel", "recipient", "status", "shareUrl")} == {
        "channel": "email", "recipient": "friend@example.com", "status": "queued", "shareUrl": None,
    }

    assert (sms["recipient"], sms["status"]) == ("+442079460958", "sent")
    parts = urlsplit(sms["shareUrl"])
    assert (parts.scheme, parts.path) == ("sms", "+442079460958")
    body = parse_qs(parts.query)["body"][0]
    assert body.startswith("Great to meet you & see you soon https://qr.example.test/i/")

    assert whatsapp["recipient"] == "+15550100100"
    parts = urlsplit(whatsapp["shareUrl"])
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "wa.me", "/15550100100")
    assert LINK.fullmatch(parse_qs(parts.query)["text"][0].split(" ")[-1])

    assert linkedin["recipient"] is None
    parts = urlsplit(linkedin["shareUrl"])
    assert (parts.netloc, parts.path) == ("www.linkedin.com", "/sharing/share-offsite/")
    assert LINK.fullmatch(parse_qs(parts.query)["url"][0])

    tokens = {token_of(x["shareUrl"]) for x in (sms, whatsapp, linkedin)}
    assert len(tokens) == 3
    stored = {row[0] for row in query(settings, "SELECT token_hash FROM invitations")}
    assert not any(token in hashed for token in tokens for hashed in stored)  # only hashes are kept
    assert {token_hash(token) for token in tokens} <= stored
    for channel in ("sms", "whatsapp", "linkedin"):
        assert viral("sent", channel) == before[channel] + 1
    listed = invitations(client, user, card)
    assert {i["invitationId"] for i in listed} == {x["invitationId"] for x in (email, sms, whatsapp, linkedin)}
    assert all(i["message"] == "Great to meet you & see you soon" for i in listed)


def test_without_a_message_the_deep_link_names_the_sender(client, user):
    card = create_card(client, user["headers"], fullName="Jane Doe")
    [sms] = share(client, user, card, {"channel": "sms", "to": "+15550100101"}).json()["invitations"]
    body = parse_qs(urlsplit(sms["shareUrl"]).query)["body"][0]
    assert body.startswith("Jane Doe shared a contact card with you: https://qr.example.test/i/")


# --- duplicates ----------------------------------------------------------------------


def test_the_same_recipient_on_the_same_day_is_one_invitation(client, user, settings):
    card = create_card(client, user["headers"])
    other_card = create_card(client, user["headers"])
    first = share(client, user, card, {"channel": "email", "to": "Dup@Example.com"}).json()["invitations"][0]
    again = share(
        client, user, other_card,
        {"channel": "email", "to": "dup@example.COM"},
        {"channel": "sms", "to": "+15550100102"},
        {"channel": "whatsapp", "to": "+1 555 010 0102"},  # the same number, another channel
    ).json()["invitations"]
    assert [(i["status"], i["shareUrl"]) for i in (again[0], again[2])] == [("duplicate", None)] * 2
    assert again[0]["invitationId"] == first["invitationId"]
    assert again[2]["invitationId"] == again[1]["invitationId"]
    assert query(settings, "SELECT count(*) FROM invitations") == [(2,)]
    assert query(settings, "SELECT count(*) FROM email_outbox WHERE kind = 'invitation'") == [(1,)]
    # Another sender may invite the same person; so may the same sender on another day.
    stranger = register(client)
    stranger_card = create_card(client, stranger["headers"])
    stranger_share = share(client, stranger, stranger_card, {"channel": "email", "to": "dup@example.com"})
    assert stranger_share.json()["invitations"][0]["status"] == "queued"
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    execute(settings, "UPDATE invitations SET day = ? WHERE invitation_id = ?", (yesterday, first["invitationId"]))
    assert share(client, user, card, {"channel": "email", "to": "dup@example.com"}).json()["invitations"][0]["status"] == "queued"


def test_a_linkedin_post_is_one_per_card_and_day(client, user):
    card, other = create_card(client, user["headers"]), create_card(client, user["headers"])
    statuses = [share(client, user, c, {"channel": "linkedin"}).json()["invitations"][0]["status"] for c in (card, other, card)]
    assert statuses == ["sent", "sent", "duplicate"]


# --- recipient checks ----------------------------------------------------------------

BAD_SHARES = [
    ({"recipients": []}, "recipients"),
    ({"recipients": [{"channel": "linkedin"}] * 51}, "recipients"),
    ({"recipients": [{"channel": "fax", "to": "+15550100"}]}, "recipients[0].channel"),
    ({"recipients": [{"channel": "email"}]}, "recipients[0].to"),
    ({"recipients": [{"channel": "email", "to": "not-an-address"}]}, "recipients[0].to"),
    ({"recipients": [{"channel": "email", "to": "Jane <jane@example.com>"}]}, "recipients[0].to"),
    ({"recipients": [{"channel": "email", "to": "a@example.com, b@example.com"}]}, "recipients[0].to"),
    ({"recipients": [{"channel": "email", "to": "a@example.com\r\nBcc: x@evil.example"}]}, "recipients[0].to"),
    ({"recipients": [{"channel": "email", "to": "a@example.com\nBcc: x@evil.example"}]}, "recipients[0].to"),
    ({"recipients": [{"channel": "email", "to": "a@example.com\u2028"}]}, "recipients[0].to"),
    ({"recipients": [{"channel": "sms", "to": "555 0100"}]}, "recipients[0].to"),
    ({"recipients": [{"channel": "sms", "to": "+1 555"}]}, "recipients[0].to"),
    ({"recipients": [{"channel": "whatsapp", "to": "+1234567890123456"}]}, "recipients[0].to"),
    ({"recipients": [{"channel": "whatsapp", "to": "+1 555 0100; drop"}]}, "recipients[0].to"),
    ({"recipients": [{"channel": "whatsapp"}]}, "recipients[0].to"),
    ({"recipients": [{"channel": "linkedin", "to": "jane@example.com"}]}, "recipients[0].to"),
    ({"recipients": [{"channel": "linkedin"}, {"channel": "sms", "to": "nope"}]}, "recipients[1].to"),
    ({"recipients": [{"channel": "linkedin"}], "message": "hi\r\nBcc: x@evil.example"}, "message"),
    ({"recipients": [{"channel": "linkedin"}], "message": "tab\there"}, "message"),
    ({"recipients": [{"channel": "linkedin"}], "message": "x" * 501}, "message"),
    ({"recipients": [{"channel": "linkedin", "cc": "x@evil.example"}]}, None),
    ({"recipients": [{"channel": "linkedin"}], "bcc": "x@evil.example"}, None),
]


@pytest.mark.parametrize("body, field", BAD_SHARES)
def test_bad_shares_are_refused_and_nothing_is_kept(client, user, settings, body, field):
    card = create_card(client, user["headers"])
    problem = assert_problem(client.post(f"/v1/cards/{card['cardId']}/share", json=body, headers=user["headers"]), 422)
    if field:
        assert field in {e["field"] for e in problem["errors"]}, problem
    assert query(settings, "SELECT count(*) FROM invitations") == [(0,)]
    assert query(settings, "SELECT count(*) FROM email_outbox WHERE kind = 'invitation'") == [(0,)]


def test_the_daily_email_limit_refuses_the_whole_request(client, user, settings, monkeypatch):
    monkeypatch.setattr(sharing, "EMAILS_PER_DAY", 3)
    card = create_card(client, user["headers"])
    assert share(client, user, card, *({"channel": "email", "to": unique_email()} for _ in range(2))).status_code == 202
    emails = ({"channel": "email", "to": unique_email()} for _ in range(2))
    response = share(client, user, card, {"channel": "sms", "to": "+15550100103"}, *emails)
    assert_problem(response, 429)
    assert 0 < int(response.headers["retry-after"]) <= 86400
    assert query(settings, "SELECT count(*) FROM invitations") == [(2,)]
    assert share(client, user, card, {"channel": "sms", "to": "+15550100103"}).status_code == 202


# --- the funnel ----------------------------------------------------------------------


def test_a_click_on_a_deep_link_counts_for_its_channel(client, user):
    card = create_card(client, user["headers"], slug="whatsapp-card")
    [sent] = share(client, user, card, {"channel": "whatsapp", "to": "+15550100104"}).json()["invitations"]
    before = viral("clicked", "whatsapp")
    client.get(f"/i/{token_of(sent['shareUrl'])}", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
    assert invitations(client, user, card)[0]["status"] == "clicked"
    assert viral("clicked", "whatsapp") == before + 1


def test_a_followed_link_counts_the_card_view_too(client, user):
    card = create_card(client, user["headers"], slug="view-after-click")
    [sent] = share(client, user, card, {"channel": "sms", "to": "+15550100105"}).json()["invitations"]
    client.get(f"/i/{token_of(sent['shareUrl'])}", headers={"User-Agent": PHONE_UA})
    flush_counters(client)
    assert client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).json()["viewCount"] == 1


@pytest.mark.parametrize("token", ["unknown-token-0123456789", "short", "..%2f..%2fetc", "A" * 65])
def test_unknown_tracked_links(client, token):
    followed = client.get(f"/i/{token}", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
    assert followed.status_code == 404 and "location" not in followed.headers
    if "%" not in token:  # a traversal-shaped path matches no route at all
        assert followed.headers["content-type"].startswith("text/html") and "No such invitation" in followed.text
    image = client.get(f"/i/{token}/open.gif", headers={"User-Agent": PHONE_UA})
    assert image.status_code in (200, 404)
    if image.status_code == 200:
        assert image.content == sharing.PIXEL


def test_deleting_a_card_ends_its_tracked_links(client, user, settings):
    card = create_card(client, user["headers"])
    [sent] = share(client, user, card, {"channel": "sms", "to": "+15550100106"}).json()["invitations"]
    client.delete(f"/v1/cards/{card['cardId']}", headers=user["headers"])
    assert client.get(f"/i/{token_of(sent['shareUrl'])}", headers={"User-Agent": PHONE_UA}, follow_redirects=False).status_code == 404
    assert query(settings, "SELECT count(*) FROM invitations") == [(0,)]


# --- invitation tokens at registration ------------------------------------------------


def _invite_token(client, user, card, phone="+15550100107") -> str:
    [sent] = share(client, user, card, {"channel": "sms", "to": phone}).json()["invitations"]
    return token_of(sent["shareUrl"])


def _register(client, **extra):
    return client.post("/v1/auth/register", json={"email": unique_email(), "password": PASSWORD, "marketingConsent": False, **extra})


def test_invite_only_registration_needs_a_valid_token(tmp_path, app_of):
    settings = make_settings(tmp_path, registration="invite")
    with TestClient(app_of(settings), base_url="https://qr.example.test") as client:
        admin = register(client, "admin@example.com")  # the first account needs none
        card = create_card(client, admin["headers"])
        token = _invite_token(client, admin, card)
        assert_problem(_register(client), 403)
        assert_problem(_register(client, inviteToken="x" * 32), 403)
        joined = _register(client, inviteToken=token)
        assert joined.status_code == 201
        assert_problem(_register(client, inviteToken=token), 403)  # used
        old = _invite_token(client, admin, card, "+15550100108")
        month_ago = (datetime.now(UTC) - timedelta(days=31)).isoformat().replace("+00:00", "Z")
        execute(settings, "UPDATE invitations SET created_at = ? WHERE status = 'sent'", (month_ago,))
        assert_problem(_register(client, inviteToken=old), 403)  # expired
        assert query(settings, "SELECT count(*) FROM users") == [(2,)]


def test_closed_registration_refuses_even_a_token(tmp_path, app_of):
    settings = make_settings(tmp_path, registration="closed")
    with TestClient(app_of(settings), base_url="https://qr.example.test") as client:
        admin = register(client)
        token = _invite_token(client, admin, create_card(client, admin["headers"]))
        assert_problem(_register(client, inviteToken=token), 403)


def test_open_registration_ignores_an_unknown_token_but_refuses_a_malformed_one(client):
    assert _register(client, inviteToken="u" * 32).status_code == 201
    assert_problem(_register(client, inviteToken="bad token!"), 422)


# --- who may see what ------------------------------------------------------------------

ROUTES = [
    ("POST", "/v1/cards/{id}/share", {"recipients": [{"channel": "linkedin"}]}, 202),
    ("GET", "/v1/cards/{id}/invitations", None, 200),
    ("GET", "/v1/cards/{id}/stats", None, 200),
    ("GET", "/v1/cards/{id}/stats?format=csv", None, 200),
]


@pytest.mark.parametrize("method, path, body, ok", ROUTES)
@pytest.mark.parametrize("who", ["owner", "stranger", "admin-stranger", "anonymous"])
def test_card_sharing_permissions(client, method, path, body, ok, who):
    admin = register(client)  # the first account
    owner = register(client)
    card = create_card(client, owner["headers"])
    headers = {"owner": owner["headers"], "stranger": register(client)["headers"], "admin-stranger": admin["headers"], "anonymous": {}}[who]
    expected = {"owner": ok, "stranger": 404, "admin-stranger": 404, "anonymous": 401}[who]
    response = client.request(method, path.format(id=card["cardId"]), json=body, headers=headers)
    assert response.status_code == expected, response.text
    if who != "owner":
        assert invitations(client, owner, card) == []


@pytest.mark.parametrize("who, status", [("admin", 200), ("user", 403), ("anonymous", 401)])
def test_k_factor_is_for_the_admin(client, who, status):
    admin, user = register(client), register(client)
    headers = {"admin": admin["headers"], "user": user["headers"], "anonymous": {}}[who]
    response = client.get("/v1/viral/k-factor?period=7d", headers=headers)
    assert response.status_code == status, response.text


def test_an_api_key_shares_like_a_token(client, user):
    key = client.post("/v1/api-keys", json={"name": "crm"}, headers=user["headers"]).json()["key"]
    card = create_card(client, user["headers"])
    response = client.post(f"/v1/cards/{card['cardId']}/share", json={"recipients": [{"channel": "linkedin"}]}, headers={"X-API-Key": key})
    assert response.status_code == 202


def test_the_export_has_invitations_and_scans(client, user):
    card = create_card(client, user["headers"], slug="exported-card")
    [sent] = share(client, user, card, {"channel": "sms", "to": "+15550100109"}).json()["invitations"]
    client.get("/c/exported-card", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
    flush_counters(client)
    other = register(client)
    create_card(client, other["headers"], slug="not-exported")
    client.get("/c/not-exported", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
    flush_counters(client)
    export = client.get("/v1/me/export", headers=user["headers"]).json()
    assert [(i["invitationId"], i["cardId"], i["recipient"]) for i in export["invitations"]] == [
        (sent["invitationId"], card["cardId"], "+15550100109")
    ]
    assert [(s["cardId"], s["kind"], s["deviceClass"]) for s in export["scans"]] == [(card["cardId"], "scan", "mobile")]
    assert client.get("/v1/me/export", headers=other["headers"]).json()["invitations"] == []


def test_the_sharing_metrics_are_exported_under_their_names(tmp_path, app_of):
    settings = make_settings(tmp_path, trust_proxy_headers=True)
    with TestClient(app_of(settings)) as client:
        user = register(client)
        create_card(client, user["headers"], slug="metric-card")
        client.get("/c/metric-card", headers={"User-Agent": PHONE_UA, "Fly-Region": "syd"}, follow_redirects=False)
        flush_counters(client)
        text = client.get("/metrics").text
    samples = {line.split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    for event in ("sent", "opened", "clicked", "converted", "failed"):
        for channel in ("email", "sms", "whatsapp", "linkedin"):
            assert f'viral_events_total{{channel="{channel}",event_type="{event}"}}' in samples
    for period in ("7d", "30d", "90d"):
        assert f'viral_k_factor{{period="{period}"}}' in samples
    assert {'queue_depth{queue="email"}', 'queue_jobs_failed_total{queue="email"}', 'scans_by_country_total{country="AU"}'} <= samples
    assert "counter_flush_events_count" in samples and "counter_flush_seconds_count" in samples
