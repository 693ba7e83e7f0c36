"""The console's share, invitations, stats and API keys pages, in process over a real
database: each renders, takes a good POST, shows a bad one's error next to its field, and
refuses a POST without the CSRF token or from another origin."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta
from urllib.parse import unquote

import pytest

from app.console import charts, invitations, team
from app.sharing import sharing
from app.sharing.kfactor import Cohort
from tests.support.app import PHONE_UA, create_card, flush_counters, register
from tests.support.console import errors_of, log_in, post_form
from tests.support.db import execute, query

SHARE = {"email": "", "sms": "", "whatsapp": "", "message": ""}


@pytest.fixture
def account(client):
    """A signed-in console client with one card; returns (auth response, card, CSRF token)."""
    auth = register(client)
    card = create_card(client, auth["headers"], fullName="Jane Doe")
    return auth, card, log_in(client, auth["user"]["email"])


def error_of(page: str, field: str) -> str | None:
    return html.unescape(errors_of(page)[field]) if field in errors_of(page) else None


def tracked_tokens(page: str) -> list[str]:
    return re.findall(r"/i/([A-Za-z0-9_-]{16,64})", unquote(html.unescape(page)))


def test_share_sends_and_shows_each_recipient(client, account):
    _, card, csrf = account
    path = f"/app/cards/{card['cardId']}/share"
    form = client.get(path)
    assert form.status_code == 200
    assert 'aria-current="page">Share</span>' in form.text  # breadcrumbs: Cards › Jane Doe › Share
    assert f'href="/app/cards/{card["cardId"]}">Jane Doe</a>' in form.text

    data = {**SHARE, "email": "ann@example.com,\nbob@example.com", "whatsapp": "+44 20 7946 0958", "linkedin": "yes",
            "message": "Great to meet you!"}
    response = post_form(client, path, csrf, **data)
    assert response.status_code == 303
    result_url = response.headers["location"]
    assert result_url.startswith(path + "/")

    result = client.get(result_url)
    assert result.status_code == 200
    assert "Invitations made for 4: emails go out by themselves" in result.text
    assert result.text.count("Email queued") == 2
    assert 'href="https://wa.me/442079460958?text=' in result.text
    assert 'href="https://www.linkedin.com/sharing/share-offsite/?url=' in result.text
    assert len(tracked_tokens(result.text)) == 2  # WhatsApp's and LinkedIn's links
    statuses = query(client.app.state.settings, "SELECT channel, status FROM invitations ORDER BY id")
    # The outbox may have written the emails (to .eml files, no SMTP_URL here) already.
    assert [channel for channel, _ in statuses] == ["email", "email", "whatsapp", "linkedin"]
    assert {status for channel, status in statuses if channel == "email"} <= {"queued", "sent"}
    assert [status for channel, status in statuses if channel != "email"] == ["sent", "sent"]

    # The same people again today: nothing new, each said as such.
    again = client.get(post_form(client, path, csrf, **data).headers["location"])
    assert "Nothing new was sent" in again.text
    assert again.text.count("Already invited today") == 4
    assert len(query(client.app.state.settings, "SELECT 1 FROM invitations")) == 4


def test_share_result_belongs_to_its_account(client, account):
    _, card, csrf = account
    path = f"/app/cards/{card['cardId']}/share"
    result_url = post_form(client, path, csrf, **{**SHARE, "sms": "+1 555 010 9999"}).headers["location"]
    client.cookies.clear()
    other = register(client)
    log_in(client, other["user"]["email"])
    assert client.get(result_url).status_code == 404  # not their card
    own = create_card(client, other["headers"])
    key = result_url.rsplit("/", 1)[1]
    # A result key on another card (even one's own) leads to that card's list, not to the links.
    response = client.get(f"/app/cards/{own['cardId']}/share/{key}", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == f"/app/cards/{own['cardId']}/invitations"


@pytest.mark.parametrize(
    ("data", "field", "message", "status"),
    [
        ({"whatsapp": "+44 20 7946 0958\n12345"}, "whatsapp", "Not valid: 12345. Use an international phone number", 422),
        ({"email": "ann@example.com, not-an-address"}, "email", "Not valid: not-an-address. Use an email address", 422),
        ({"email": ",".join(f"p{n}@example.com" for n in range(51))}, "recipients", "At most 50 recipients", 422),
        ({}, "recipients", "Add at least one", 422),
        ({"sms": "+1 555 010 9999", "message": "x" * 501}, "message", "Use at most 500 characters", 422),
    ],
)
def test_share_refuses_bad_recipients_next_to_the_field(client, account, data, field, message, status):
    _, card, csrf = account
    response = post_form(client, f"/app/cards/{card['cardId']}/share", csrf, **{**SHARE, **data})
    assert response.status_code == status
    assert error_of(response.text, field).startswith(message), response.text
    assert "There is a problem" in response.text
    for name, value in data.items():  # what was typed is still there
        if name != "message":
            assert html.escape(value) in response.text
    assert not query(client.app.state.settings, "SELECT 1 FROM invitations")


def test_share_past_the_daily_email_limit(client, account, monkeypatch):
    _, card, csrf = account
    monkeypatch.setattr(sharing, "EMAILS_PER_DAY", 2)
    data = {**SHARE, "email": "a@example.com b@example.com c@example.com"}
    response = post_form(client, f"/app/cards/{card['cardId']}/share", csrf, **data)
    assert response.status_code == 429
    assert error_of(response.text, "email").startswith("At most 2 email invitations a day")
    assert not query(client.app.state.settings, "SELECT 1 FROM invitations")


def test_invitations_pages_follow_the_funnel(client, account):
    auth, card, csrf = account
    everything = client.get("/app/invitations")
    assert everything.status_code == 200
    assert 'aria-current="page">Invitations</a>' in everything.text
    assert "No invitations yet" in everything.text and "Choose a card to share" in everything.text
    per_card = client.get(f"/app/cards/{card['cardId']}/invitations")
    assert "No invitations yet" in per_card.text and f'href="/app/cards/{card["cardId"]}/share"' in per_card.text

    shared = post_form(client, f"/app/cards/{card['cardId']}/share", csrf, **{**SHARE, "sms": "+1 555 010 9999"})
    result = client.get(shared.headers["location"])
    (token,) = tracked_tokens(result.text)
    page = client.get("/app/invitations").text
    assert "+15550109999" in page and 'class="status status-sent">Sent<' in page
    assert '<li class="done current">Sent' in page and '<li class="todo">Clicked' in page

    assert client.get(f"/i/{token}", headers={"User-Agent": PHONE_UA}, follow_redirects=False).status_code == 302
    for path in ("/app/invitations", f"/app/cards/{card['cardId']}/invitations"):
        page = client.get(path).text
        assert 'class="status status-clicked">Clicked<' in page, path
        assert '<li class="done current">Clicked' in page
        assert "<dt>Clicked</dt>" in page


def test_a_user_without_cards_is_told_to_create_one(client):
    auth = register(client)
    log_in(client, auth["user"]["email"])
    page = client.get("/app/invitations").text
    assert "Create your first card" in page


@pytest.mark.parametrize("suffix", ["/share", "/invitations", "/stats", "/stats.csv"])
def test_another_users_card_is_the_same_404_as_a_missing_one(client, account, suffix):
    other = register(client)
    theirs = create_card(client, other["headers"])
    foreign = client.get(f"/app/cards/{theirs['cardId']}{suffix}")
    missing = client.get(f"/app/cards/{'0' * 32}{suffix}")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.text == missing.text
    assert "No such card." in foreign.text and "Go to your cards" in foreign.text


def test_stats_page_draws_the_scans(client, account):
    _, card, csrf = account
    empty = client.get(f"/app/cards/{card['cardId']}/stats")
    assert empty.status_code == 200
    assert "Nothing counted in this period yet" in empty.text
    assert '<svg class="chart chart-wide"' in empty.text and '<svg class="chart chart-narrow"' in empty.text
    assert "style=" not in empty.text  # the CSP refuses inline styles

    assert client.get(f"/c/{card['slug']}", headers={"User-Agent": PHONE_UA}, follow_redirects=False).status_code == 302
    assert client.get(f"/p/{card['slug']}.vcf?src=nfc", headers={"User-Agent": PHONE_UA}).status_code == 200
    flush_counters(client)
    page = client.get(f"/app/cards/{card['cardId']}/stats?days=7").text
    assert 'href="?days=7" aria-current="page"' in page
    assert re.search(r'<span class="total-number"[^>]*>1</span> <span class="total-label"><span class="swatch swatch-scans"', page)
    assert re.search(r'<span class="total-number"[^>]*>1</span> <span class="total-label"><span class="swatch swatch-saves"', page)
    assert len(re.findall(r"<title>\d+ \w+: 1 scans</title>", page)) == 2  # the day's dot, wide and narrow
    assert len(re.findall(r"<title>\d+ \w+: 1 saves</title>", page)) == 2
    assert "<td>1</td><td>0</td><td>1</td></tr>" in page  # the table for screen readers: today's scan and save
    assert '<span class="bar-name">mobile</span>' in page
    assert page.count("<tr><th scope=\"row\"><time") == 7
    # The sources table: every source, the scan's (no src: the printed code) and the save's.
    assert '<tr><th scope="row">QR code</th><td>1</td><td>0</td><td>0</td></tr>' in page
    assert '<tr><th scope="row">NFC tag</th><td>0</td><td>0</td><td>1</td></tr>' in page
    assert page.count('<tr><th scope="row">') == 7 + 6
    # A period the page does not offer is the default one.
    assert 'href="?days=30" aria-current="page"' in client.get(f"/app/cards/{card['cardId']}/stats?days=13").text


def test_stats_csv_is_the_apis(client, account):
    auth, card, csrf = account
    client.get(f"/c/{card['slug']}", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
    flush_counters(client)
    response = client.get(f"/app/cards/{card['cardId']}/stats.csv?days=90")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == f'attachment; filename="{card["slug"]}-stats.csv"'
    api = client.get(f"/v1/cards/{card['cardId']}/stats?format=csv&days=90", headers=auth["headers"])
    assert response.text == api.text
    assert "day," in response.text and ",1,0,0\r\n" in response.text
    assert "\r\nsource,qr,1,0,0\r\nsource,nfc,0,0,0\r\n" in response.text


def test_api_keys_create_use_and_revoke(client, account):
    auth, _, csrf = account
    page = client.get("/app/account/keys")
    assert page.status_code == 200 and "No keys yet" in page.text

    bad = post_form(client, "/app/account/keys", csrf, name="  ")
    assert bad.status_code == 422
    assert error_of(bad.text, "name").startswith("Give the key a name")

    created = post_form(client, "/app/account/keys", csrf, name="Build server")
    assert created.status_code == 201
    key = re.search(r'<code id="new-key">([^<]+)</code>', created.text).group(1)
    assert "only time it is shown" in created.text
    assert client.get("/v1/cards", headers={"X-API-Key": key}).status_code == 200
    listed = client.get("/app/account/keys").text
    assert key not in listed and "Build server" in listed and key[:10] in listed
    (key_id,) = re.findall(r"/app/account/keys/([0-9a-f]+)/revoke", listed)

    confirm = client.get(f"/app/account/keys/{key_id}/revoke")
    assert confirm.status_code == 200 and "stop working at once" in confirm.text
    revoked = post_form(client, f"/app/account/keys/{key_id}/revoke", csrf)
    assert revoked.status_code == 303 and revoked.headers["location"] == "/app/account/keys"
    assert "API key revoked" in client.get("/app/account/keys").text
    assert client.get("/v1/cards", headers={"X-API-Key": key}).status_code == 401
    assert client.get(f"/app/account/keys/{key_id}/revoke").status_code == 404


def test_another_users_key_cannot_be_revoked(client, account):
    _, _, csrf = account
    other = register(client)
    theirs = client.post("/v1/api-keys", json={"name": "theirs"}, headers=other["headers"]).json()
    assert client.get(f"/app/account/keys/{theirs['keyId']}/revoke").status_code == 404
    assert post_form(client, f"/app/account/keys/{theirs['keyId']}/revoke", csrf).status_code == 404
    assert client.get("/v1/cards", headers={"X-API-Key": theirs["key"]}).status_code == 200


def test_both_charts_share_one_axis():
    """The tops are 4, 8, 20 × 10ⁿ: four whole-number ticks, for a card's scans and the team's cohorts alike."""
    tops = [m * 10**n for n in range(12) for m in (4, 8, 20)]
    assert [charts.nice_top(top) for top in tops] == tops
    assert [charts.nice_top(top + 1) for top in tops[:-1]] == tops[1:]
    cohorts = [Cohort("2026-W01", 41, 10, 3, 0.3, 0.07), Cohort("2026-W02", 7, 0, 0, None, 0.0)]
    assert [tick["value"] for tick in team.cohort_chart(cohorts)["ticks"]] == [0, 20, 40, 60, 80]
    assert [tick["value"] for tick in team.cohort_chart([])["ticks"]] == [0, 1, 2, 3, 4]


def test_the_chart_fits_its_drawing():
    assert [charts.nice_top(n) for n in (0, 4, 5, 37, 101, 12_345)] == [4, 4, 8, 40, 200, 20_000]
    days = [((date(2026, 1, 1) + timedelta(days=n)).isoformat(), n % 11, 2 * (n % 11)) for n in range(365)]
    for size in (charts.WIDE, charts.NARROW):
        chart = charts.daily_chart(days, size)
        views, scans = chart.series
        points = [tuple(map(float, point.split(","))) for point in views.points.split()]
        assert len(points) == 365 and not views.dots  # a year is a line without dots
        assert points[0][0] == chart.left and points[-1][0] == chart.right
        assert min(y for _, y in points) == chart.ticks[-1].y  # 20 views: the axis top
        assert max(y for _, y in points) == chart.baseline
        assert [label.text for label in chart.labels] == ["1 Jan", "2 Jul", "31 Dec"]
    week = charts.daily_chart(days[:7], charts.NARROW)
    assert [dot.title for dot in week.series[1].dots][:2] == ["1 Jan: 0 scans", "2 Jan: 1 scans"]


def test_invitations_page_a_page_at_a_time_and_say_failed(client, account, monkeypatch):
    _, card, csrf = account
    monkeypatch.setattr(invitations, "PER_PAGE", 2)
    post_form(client, f"/app/cards/{card['cardId']}/share", csrf, **{**SHARE, "email": "a@example.com b@example.com c@example.com"})
    # What the outbox does when the mail server refuses an address for good.
    execute(client.app.state.settings, "UPDATE invitations SET status = 'failed' WHERE recipient = 'a@example.com'")
    first = client.get("/app/invitations").text
    assert "c@example.com" in first and "b@example.com" in first and "a@example.com" not in first
    older = re.search(r'href="(/app/invitations\?cursor=\d+)">Older invitations', first).group(1)
    last = client.get(older).text
    assert "a@example.com" in last and "Older invitations" not in last and 'href="/app/invitations">Newest' in last
    assert 'class="status status-failed">Failed<' in last and "The email could not be delivered." in last
