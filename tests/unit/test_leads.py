"""Contact exchange (SPEC §8): the card page's form, hostile posts refused with a friendly 4xx
and nothing kept, the lead stored with its consent, the emails queued, the page still
answered from memory, the /v1/leads API, the console's Leads pages, the account export and
what deleting a card or an account does to leads."""

from __future__ import annotations

import csv
import dataclasses
import email
import email.policy
import io
from datetime import UTC, datetime, timedelta

import pytest
import vobject
from litestar.testing import TestClient

from app.db import isoformat
from app.leads import form
from tests.support.app import assert_problem, create_card, register
from tests.support.console import csrf_of, log_in
from tests.support.db import execute, query
from tests.support.leads import VISITOR, form_errors, page_token, send_details
from tests.support.waiting import wait_until

BASE = "https://qr.example.test"


def stored(settings) -> int:
    return query(settings, "SELECT count(*) FROM leads")[0][0]


def lead_mail(settings) -> list[tuple]:
    return query(settings, "SELECT kind, recipient FROM email_outbox WHERE kind IN ('lead', 'lead_card') ORDER BY id")


@pytest.fixture
def owner(client):
    account = register(client, "owner@example.com")
    account["card"] = create_card(client, account["headers"], slug="jane-leads", fullName="Jane Owner")
    return account


# --- hostile posts -----------------------------------------------------------------------

HOSTILE = [
    # name, how to post (client, settings, token) -> response, status, what the page says
    ("missing token", lambda c, s, t: send_details(c, "jane-leads"), 400, "could not be checked"),
    ("forged token", lambda c, s, t: send_details(c, "jane-leads", t[:-4] + "0000"), 400, "could not be checked"),
    ("token not a token", lambda c, s, t: send_details(c, "jane-leads", "hello"), 400, "could not be checked"),
    ("token for another slug", lambda c, s, t: send_details(
        c, "jane-leads", form.issue_token(s.jwt_secret, "other-card", int(t.split(".")[0]))), 400, "could not be checked"),
    ("token from the future", lambda c, s, t: send_details(
        c, "jane-leads", form.issue_token(s.jwt_secret, "jane-leads", int(t.split(".")[0]) + 7200)), 400, "could not be checked"),
    ("token issued over 24 h ago", lambda c, s, t: send_details(
        c, "jane-leads", form.issue_token(s.jwt_secret, "jane-leads", int(t.split(".")[0]) - 25 * 3600)), 400, "more than a day"),
    ("honeypot filled", lambda c, s, t: send_details(c, "jane-leads", t, website="http://spam.example"), 400, "could not be sent"),
    ("no consent", lambda c, s, t: send_details(c, "jane-leads", t, consent=None), 422, "tick the box"),
    ("no name", lambda c, s, t: send_details(c, "jane-leads", t, name=""), 422, "give your name"),
    ("name too long", lambda c, s, t: send_details(c, "jane-leads", t, name="x" * 201), 422, "at most 200"),
    ("note too long", lambda c, s, t: send_details(c, "jane-leads", t, note="x" * 2001), 422, "at most 2000"),
    ("company too long", lambda c, s, t: send_details(c, "jane-leads", t, company="x" * 201), 422, "at most 200"),
    ("bad email", lambda c, s, t: send_details(c, "jane-leads", t, email="not-an-address"), 422, "email address like"),
    ("control characters", lambda c, s, t: send_details(c, "jane-leads", t, name="Bob\x1b[31m"), 422, "give your name"),
    ("neither email nor phone", lambda c, s, t: send_details(c, "jane-leads", t, email="", phone=""), 422, "email address or a phone"),
    ("card wanted, no email", lambda c, s, t: send_details(c, "jane-leads", t, email="", send_card="yes"), 422, "get the card by email"),
    ("body over 64 KiB", lambda c, s, t: send_details(c, "jane-leads", t, note="x" * 70_000), 400, "could not be checked"),
    ("body not UTF-8", lambda c, s, t: c.post("/p/jane-leads/exchange", content=b"\xff\xfe%%%",
                                             headers={"content-type": "application/x-www-form-urlencoded"}), 400, "could not be checked"),
    ("body as JSON", lambda c, s, t: c.post("/p/jane-leads/exchange", json={**VISITOR, "token": t}), 400, "could not be checked"),
    ("unknown slug", lambda c, s, t: send_details(c, "no-such-card", t), 404, "No such card"),
    ("slug of no shape", lambda c, s, t: send_details(c, "NO_SUCH", t), 404, "No such card"),
]


@pytest.mark.parametrize(("how", "status", "says"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_hostile_exchange_posts_get_a_friendly_4xx_and_nothing_is_kept(client, settings, owner, how, status, says):
    token = page_token(client, "jane-leads")
    response = how(client, settings, token)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert says in response.text
    assert stored(settings) == 0 and lead_mail(settings) == []


def test_a_refused_form_comes_back_with_what_was_typed_and_a_fresh_token(client, settings, owner):
    token = page_token(client, "jane-leads")
    old = form.issue_token(settings.jwt_secret, "jane-leads", int(token.split(".")[0]) - 25 * 3600)
    response = send_details(client, "jane-leads", old, name="Bob Keeps", note="Still here")
    assert response.status_code == 400
    assert 'value="Bob Keeps"' in response.text and "Still here" in response.text
    fresh = response.text.split('name="token" value="')[1].split('"')[0]
    assert fresh != old
    assert send_details(client, "jane-leads", fresh).status_code == 200
    assert stored(settings) == 1


def test_a_page_token_expires_after_24_hours_by_the_database_clock(client, settings, owner):
    token = page_token(client, "jane-leads")
    # Issued at the start of the page's hour (app/leads/form.py), which may be up to an
    # hour ago: the times below count from it, not from now.
    issued = datetime.fromtimestamp(int(token.partition(".")[0]), UTC)
    db = client.app.state.db
    db.clock = lambda: issued + timedelta(hours=24, minutes=1)
    response = send_details(client, "jane-leads", token)
    assert response.status_code == 400 and "more than a day" in response.text
    assert stored(settings) == 0
    db.clock = lambda: issued + timedelta(hours=23)  # still good
    assert send_details(client, "jane-leads", token).status_code == 200


def test_a_deleted_card_takes_no_details(client, settings, owner):
    token = page_token(client, "jane-leads")
    assert client.delete(f"/v1/cards/{owner['card']['cardId']}", headers=owner["headers"]).status_code == 204
    response = send_details(client, "jane-leads", token)
    assert response.status_code == 410 and "removed" in response.text
    assert stored(settings) == 0


@pytest.fixture
def limited(tmp_path, settings, app_of):
    """An app whose limits are small: 2 leads per client an hour, 3 per card."""
    with TestClient(app_of(dataclasses.replace(settings, leads_per_ip_hour=2, leads_per_card_hour=3)), base_url=BASE) as client:
        yield client


def test_over_the_per_client_limit_is_a_429_page(limited, settings):
    account = register(limited)
    for slug in ("limit-one", "limit-two"):
        create_card(limited, account["headers"], slug=slug)
    token = page_token(limited, "limit-one")
    assert [send_details(limited, "limit-one", token).status_code for _ in range(2)] == [200, 200]
    # Another card, which has no lead yet: the client is over its own limit.
    response = send_details(limited, "limit-two", page_token(limited, "limit-two"))
    assert response.status_code == 429 and "retry-after" in response.headers
    assert "Too many" in response.text
    assert stored(settings) == 2


def test_over_the_per_card_limit_is_a_429_page(limited, settings):
    account = register(limited)
    card = create_card(limited, account["headers"], slug="card-limit")
    now = isoformat(limited.app.state.db.now())
    for n in range(3):  # three leads this hour, from three other clients
        execute(settings, """INSERT INTO leads (lead_id, user_id, card_id, card_slug, card_name, name, consent_text,
            consented_at, client_key, created_at) VALUES (?, ?, ?, 'card-limit', 'x', 'x', 'x', ?, ?, ?)""",
                (f"seeded{n}", account["user"]["userId"], card["cardId"], now, f"other{n}", now))
    response = send_details(limited, "card-limit", page_token(limited, "card-limit"))
    assert response.status_code == 429
    assert stored(settings) == 3


# --- the happy path ------------------------------------------------------------------------


def test_a_lead_is_kept_with_its_consent_and_the_owner_and_visitor_get_mail(client, settings, owner):
    token = page_token(client, "jane-leads")
    response = send_details(client, "jane-leads", token, send_card="yes", note="=HYPERLINK(\"x\")\nline two")
    assert response.status_code == 200, response.text
    assert "Sent" in response.text and "on its way to your inbox" in response.text
    rows = query(settings, "SELECT name, email, consent_text, consented_at, created_at, wants_card, user_id FROM leads")
    assert len(rows) == 1
    name, address, consent, consented_at, created_at, wants_card, user_id = rows[0]
    assert (name, address, wants_card, user_id) == ("Bob Visitor", "bob@example.com", 1, owner["user"]["userId"])
    assert consent == form.consent_text("Jane Owner") and consent in client.get("/p/jane-leads").text
    assert consented_at == created_at
    assert lead_mail(settings) == [("lead", "owner@example.com"), ("lead_card", "bob@example.com")]
    files = wait_until(lambda: len(found := sorted(settings.outbox_dir.glob("*.eml"))) >= 3 and found, what="the lead emails")
    messages = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
    to_owner = next(m for m in messages if m["To"] == "owner@example.com" and "New contact" in m["Subject"])
    assert "Bob Visitor" in to_owner.get_body(("plain",)).get_content() and to_owner["Reply-To"].addresses[0].addr_spec == "bob@example.com"
    to_visitor = next(m for m in messages if m["To"] == "bob@example.com")
    attachment = next(to_visitor.iter_attachments())
    assert attachment.get_filename() == "jane-leads.vcf"
    assert vobject.readOne(attachment.get_content()).fn.value == "Jane Owner"


def test_the_card_page_stays_the_same_bytes_within_the_hour(client, owner):
    first, second = client.get("/p/jane-leads"), client.get("/p/jane-leads")
    assert first.content == second.content
    assert "form-action 'self'" in first.headers["content-security-policy"]
    db = client.app.state.db
    later = db.now() + timedelta(hours=1)
    db.clock = lambda: later
    assert client.get("/p/jane-leads").content != first.content  # a new hour, a new token


# --- the API -------------------------------------------------------------------------------


def _leads(client, slug, *names):
    token = page_token(client, slug)
    for name in names:
        assert send_details(client, slug, token, name=name).status_code == 200


@pytest.fixture
def generous(settings, app_of):
    with TestClient(app_of(dataclasses.replace(settings, leads_per_ip_hour=1000)), base_url=BASE) as client:
        yield client


def test_the_api_lists_pages_filters_reads_and_deletes_leads(generous):
    client = generous
    owner = register(client)
    first = create_card(client, owner["headers"], slug="api-one")
    create_card(client, owner["headers"], slug="api-two")
    _leads(client, "api-one", "Ann", "Ben")
    _leads(client, "api-two", "Cid")
    headers = owner["headers"]
    page = client.get("/v1/leads?limit=2", headers=headers).json()
    assert [lead["name"] for lead in page["items"]] == ["Cid", "Ben"] and page["nextCursor"]
    rest = client.get(f"/v1/leads?limit=2&cursor={page['nextCursor']}", headers=headers).json()
    assert [lead["name"] for lead in rest["items"]] == ["Ann"] and rest["nextCursor"] is None
    mine = client.get(f"/v1/leads?cardId={first['cardId']}", headers=headers).json()["items"]
    assert [lead["name"] for lead in mine] == ["Ben", "Ann"]
    assert [lead["name"] for lead in client.get("/v1/leads?q=ci", headers=headers).json()["items"]] == ["Cid"]
    lead_id = mine[0]["leadId"]
    one = client.get(f"/v1/leads/{lead_id}", headers=headers).json()
    assert one["consentText"] == form.consent_text("Jane Doe") and one["cardDeleted"] is False
    # Another account sees none of them, not even by id.
    stranger = register(client)
    assert client.get("/v1/leads", headers=stranger["headers"]).json()["items"] == []
    assert_problem(client.get(f"/v1/leads/{lead_id}", headers=stranger["headers"]), 404)
    assert_problem(client.delete(f"/v1/leads/{lead_id}", headers=stranger["headers"]), 404)
    assert client.delete(f"/v1/leads/{lead_id}", headers=headers).status_code == 204
    assert_problem(client.get(f"/v1/leads/{lead_id}", headers=headers), 404)
    assert_problem(client.get("/v1/leads"), 401)
    assert_problem(client.get("/v1/leads?cursor=abc", headers=headers), 422)


def test_the_csv_export_neutralises_formulas(generous):
    client = generous
    owner = register(client)
    create_card(client, owner["headers"], slug="csv-card")
    token = page_token(client, "csv-card")
    for company in ("=1+2", "+SUM(A1)", "-3", "@cmd", "Plain"):
        assert send_details(client, "csv-card", token, company=company).status_code == 200
    response = client.get("/v1/leads/export.csv", headers=owner["headers"])
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sorted(row["company"] for row in rows) == sorted(["'=1+2", "'+SUM(A1)", "'-3", "'@cmd", "Plain"])


def test_leads_outlive_their_card_and_die_with_the_account(client, settings):
    register(client)  # the first account, the admin: the owner may delete theirs
    owner = register(client, "leaving@example.com")
    card = create_card(client, owner["headers"], slug="leaving-card", fullName="Lee Leaving")
    assert send_details(client, "leaving-card", page_token(client, "leaving-card")).status_code == 200
    exported = client.get("/v1/me/export", headers=owner["headers"]).json()
    assert [lead["name"] for lead in exported["leads"]] == ["Bob Visitor"]
    assert client.delete(f"/v1/cards/{card['cardId']}", headers=owner["headers"]).status_code == 204
    (kept,) = client.get("/v1/leads", headers=owner["headers"]).json()["items"]
    assert kept["cardDeleted"] is True and kept["cardName"] == "Lee Leaving"
    assert stored(settings) == 1
    assert client.delete("/v1/me", headers=owner["headers"]).status_code == 204
    assert stored(settings) == 0


# --- the console ---------------------------------------------------------------------------


def test_the_console_lists_searches_filters_shows_and_deletes_leads(generous, settings):
    client = generous
    owner = register(client, "console-owner@example.com")
    card = create_card(client, owner["headers"], slug="console-leads")
    _leads(client, "console-leads", "Dora Explorer", "Eve Other")
    log_in(client, "console-owner@example.com")
    listing = client.get("/app/leads")
    assert listing.status_code == 200 and 'href="/app/leads"' in listing.text
    assert "Dora Explorer" in listing.text and "Eve Other" in listing.text
    searched = client.get("/app/leads?q=dora").text
    assert "Dora Explorer" in searched and "Eve Other" not in searched
    assert "Dora Explorer" in client.get(f"/app/leads?card={card['cardId']}").text
    assert "No leads match" in client.get("/app/leads?card=nonesuch").text
    lead_id = client.get("/v1/leads?q=dora", headers=owner["headers"]).json()["items"][0]["leadId"]
    shown = client.get(f"/app/leads/{lead_id}")
    assert shown.status_code == 200 and form.consent_text("Jane Doe") in shown.text
    vcf = client.get(f"/app/leads/{lead_id}/vcard")
    assert vcf.headers["content-type"].startswith("text/vcard")
    parsed = vobject.readOne(vcf.text)
    assert parsed.fn.value == "Dora Explorer" and parsed.email.value == "bob@example.com" and parsed.org.value == ["Acme"]
    exported = client.get("/app/leads/export.csv")
    assert exported.status_code == 200 and "Dora Explorer" in exported.text
    confirm = client.get(f"/app/leads/{lead_id}/delete")
    assert confirm.status_code == 200
    deleted = client.post(f"/app/leads/{lead_id}/delete", data={"_csrf_token": csrf_of(confirm.text)}, follow_redirects=False)
    assert deleted.status_code == 303 and deleted.headers["location"] == "/app/leads"
    assert client.get(f"/app/leads/{lead_id}").status_code == 404
    assert query(settings, "SELECT name FROM leads") == [("Eve Other",)]


def test_the_console_shows_no_one_elses_lead(generous):
    client = generous
    owner = register(client)
    create_card(client, owner["headers"], slug="private-leads")
    _leads(client, "private-leads", "Private Person")
    lead_id = client.get("/v1/leads", headers=owner["headers"]).json()["items"][0]["leadId"]
    register(client, "nosy@example.com")
    log_in(client, "nosy@example.com")
    assert client.get(f"/app/leads/{lead_id}").status_code == 404
    assert "Private Person" not in client.get("/app/leads").text
    assert "Private Person" not in client.get("/app/leads/export.csv").text


def test_form_errors_are_shown_by_their_fields(client, owner):
    response = send_details(client, "jane-leads", page_token(client, "jane-leads"), name="", consent=None)
    assert response.status_code == 422
    assert form_errors(response.text) == ["Please give your name", "Please tick the box, so they may keep your details"]


def test_a_lead_shipped_by_an_edge_is_stored_once_by_its_id(client, settings, owner):
    from app.leads.leads import NewLead, apply_shipped_lead

    state = client.app.state
    card = client.blocking_portal.call(state.public_cards.get, "jane-leads")
    sent = form.Submitted.of({"name": "Edge Visitor", "email": "edge@example.com", "consent": "yes"})
    lead = NewLead.of(card, sent, "edgeclient", consented_at="2026-01-02T03:04:05.000000Z")
    apply = lambda: client.blocking_portal.call(apply_shipped_lead, state.db, state.outbox, settings, lead)  # noqa: E731
    assert [apply(), apply()] == [True, False]
    assert query(settings, "SELECT lead_id, consented_at FROM leads") == [(lead.lead_id, "2026-01-02T03:04:05.000000Z")]
    assert lead_mail(settings) == [("lead", "owner@example.com")]
