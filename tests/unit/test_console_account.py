"""The console's account and team pages in process, over a real database: the forgotten
password, the account page (email, password, consent, export, deletion), the team
admin's pages, the 403 for everyone else, and CSRF and the Origin check on every form."""

from __future__ import annotations

import json
import re

import pytest
from litestar.testing import TestClient

from app.console import team as team_pages
from app.main import create_app
from app.sharing import kfactor
from tests.support.app import PASSWORD, create_card, make_settings, register, unique_email
from tests.support.console import ORIGIN, errors_of, log_in, post_form
from tests.support.db import query
from tests.support.mail import links

NEW_PASSWORD = "a brand new passphrase here"


def flash_of(client: TestClient, location: str) -> str:
    return re.search(r'<div class="flash" role="status">([^<]+)</div>', client.get(location).text).group(1)


@pytest.fixture
def admin(client) -> dict:
    """The first account (the admin), logged in to the console: {client, user, csrf}."""
    user = register(client)
    return {"client": client, "user": user, "csrf": log_in(client, user["user"]["email"])}


# --- a forgotten password --------------------------------------------------------------


def test_a_forgotten_password_is_reset_by_the_emailed_link_and_every_session_ends(client):
    user = register(client)
    email = user["user"]["email"]
    csrf = log_in(client, email)  # a session the reset must end
    page = client.get("/app/password-reset").text
    assert 'name="email"' in page
    bad = post_form(client, "/app/password-reset", csrf, email="not an address")
    assert bad.status_code == 422 and errors_of(bad.text) == {"email": "Enter an email address like name@example.com"}
    assert 'value="not an address"' in bad.text and 'aria-describedby="email-error"' in bad.text
    # The same answer whether or not the address has an account.
    unknown = post_form(client, "/app/password-reset", csrf, email=unique_email())
    known = post_form(client, "/app/password-reset", csrf, email=email)
    assert unknown.status_code == known.status_code == 303
    assert unknown.headers["location"] == known.headers["location"] == "/app/password-reset"
    assert unknown.cookies.get("qrc_flash") == known.cookies.get("qrc_flash") == "reset-sent"
    assert "a link to choose a new password is on its way" in client.get("/app/password-reset").text
    [token] = links(client, email, "/app/password-reset/")

    form = client.get(f"/app/password-reset/{token}").text
    assert "At least 12 characters" in form
    short = post_form(client, f"/app/password-reset/{token}", csrf, newPassword="too short")
    assert short.status_code == 422 and errors_of(short.text) == {"newPassword": "Use at least 12 characters"}
    done = post_form(client, f"/app/password-reset/{token}", csrf, newPassword=NEW_PASSWORD)
    assert done.status_code == 303 and done.headers["location"] == "/app/login"
    assert "Your new password is set" in flash_of(client, "/app/login")
    settings = client.app.state.settings
    assert query(settings, "SELECT count(*) FROM web_sessions") == [(0,)]
    assert client.post("/v1/auth/refresh", json={"refreshToken": user["refreshToken"]}).status_code == 401
    log_in(client, email, NEW_PASSWORD)
    # Used once: the link now says so, with a way to ask for another.
    for method in (client.get, lambda path: post_form(client, path, csrf, newPassword=NEW_PASSWORD)):
        gone = method(f"/app/password-reset/{token}")
        assert gone.status_code == 410 and 'href="/app/password-reset"' in gone.text and "no longer works" in gone.text
    assert client.get("/app/password-reset/short").status_code == 410


# --- the account page ------------------------------------------------------------------


def test_the_email_changes_when_the_link_to_the_new_address_is_opened_logged_in(admin):
    client, csrf, old = admin["client"], admin["csrf"], admin["user"]["user"]["email"]
    page = client.get("/app/account").text
    assert old in page and 'aria-current="page">Account' in page and 'href="/app/account/keys"' in page
    new = unique_email()
    for fields, errors in [
        ({"newEmail": "nope", "password": ""}, {"newEmail": "Enter an email address like name@example.com",
                                                "password": "Enter your password"}),
        ({"newEmail": new, "password": "not my password"}, {"password": "That is not your password"}),
        ({"newEmail": old, "password": PASSWORD}, {"newEmail": "That is your address already"}),
    ]:
        response = post_form(client, "/app/account/email", csrf, **fields)
        assert response.status_code == 422 and errors_of(response.text) == errors
        assert f'value="{fields["newEmail"]}"' in response.text and '<a href="#newEmail">' in response.text or "newEmail" not in errors
    taken = register(client)["user"]["email"]
    response = post_form(client, "/app/account/email", csrf, newEmail=taken, password=PASSWORD)
    assert errors_of(response.text) == {"newEmail": "Another account has this address"}
    response = post_form(client, "/app/account/email", csrf, newEmail=new, password=PASSWORD)
    assert response.status_code == 303 and "We sent a link to your new address" in flash_of(client, "/app/account")
    [token] = links(client, new, "/app/account/email/")
    confirm = client.get(f"/app/account/email/{token}")
    assert confirm.status_code == 200 and "Use the new address" in confirm.text and f"<strong>{new}</strong>" in confirm.text
    assert query(client.app.state.settings, "SELECT email FROM users WHERE email = ?", (old,)) == [(old,)]  # a GET changes nothing
    done = post_form(client, f"/app/account/email/{token}", csrf)
    assert done.status_code == 303 and flash_of(client, "/app/account") == "Your email address is changed."
    assert query(client.app.state.settings, "SELECT email_verified FROM users WHERE email = ?", (new,)) == [(1,)]
    again = post_form(client, f"/app/account/email/{token}", csrf)
    assert again.status_code == 410 and "no longer works" in again.text
    for bad in (token, "x" * 43, "short"):  # used, unknown, malformed: said before any click
        page = client.get(f"/app/account/email/{bad}")
        assert page.status_code == 410 and "no longer works" in page.text and "Use the new address" not in page.text


def test_the_confirmation_email_is_sent_again_from_the_account_page(admin):
    client, email = admin["client"], admin["user"]["user"]["email"]
    assert "Send the confirmation email again" in client.get("/app/account").text
    sent = post_form(client, "/app/account/verify-email", admin["csrf"])
    assert sent.status_code == 303 and sent.cookies.get("qrc_flash") == "verification-sent"
    tokens = links(client, email, "/verify-email?token=")
    assert len(tokens) == 2  # registration's and this one
    assert client.post("/v1/auth/verify-email", json={"token": tokens[-1]}).status_code == 204
    page = client.get("/app/account").text
    assert "Confirmed" in page and "Send the confirmation email again" not in page


def test_a_password_change_keeps_this_session_and_ends_the_others(admin):
    client, csrf, user = admin["client"], admin["csrf"], admin["user"]
    settings = client.app.state.settings
    csrf = log_in(client, user["user"]["email"])  # a second session: the first one's cookie is gone from this client
    assert query(settings, "SELECT count(*) FROM web_sessions") == [(2,)]
    bad = post_form(client, "/app/account/password", csrf, currentPassword="wrong password!", newPassword="short")
    assert bad.status_code == 422
    assert errors_of(bad.text) == {"newPassword": "Use at least 12 characters"}
    bad = post_form(client, "/app/account/password", csrf, currentPassword="wrong password!", newPassword=NEW_PASSWORD)
    assert errors_of(bad.text) == {"currentPassword": "That is not your current password"}
    good = post_form(client, "/app/account/password", csrf, currentPassword=PASSWORD, newPassword=NEW_PASSWORD)
    assert good.status_code == 303
    assert "Your other sessions are logged out; this one stays." in flash_of(client, "/app/account")
    assert query(settings, "SELECT count(*) FROM web_sessions") == [(1,)]
    assert client.post("/v1/auth/refresh", json={"refreshToken": user["refreshToken"]}).status_code == 401
    login = client.post("/v1/auth/login", json={"email": user["user"]["email"], "password": NEW_PASSWORD})
    assert login.status_code == 200


def test_marketing_consent_records_when_it_was_given_and_withdrawn(admin):
    client, csrf = admin["client"], admin["csrf"]
    assert "You have not said yes so far." in client.get("/app/account").text
    assert post_form(client, "/app/account/consent", csrf, marketingConsent="yes").status_code == 303
    page = client.get("/app/account").text
    assert "Your choice about product news is saved." in page and re.search(r"You said yes on \d+ \w+ \d{4}", page)
    assert re.search(r'id="marketingConsent" name="marketingConsent" type="checkbox" value="yes" checked', page)
    [(consent, at)] = query(client.app.state.settings, "SELECT marketing_consent, marketing_consent_at FROM users")
    assert consent == 1 and at
    post_form(client, "/app/account/consent", csrf)
    assert "You said no on" in client.get("/app/account").text


def test_the_export_is_the_apis_json_as_a_file(admin):
    client, user = admin["client"], admin["user"]
    create_card(client, user["headers"], slug="export-me")
    response = client.get("/app/account/export")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == 'attachment; filename="qrcontact-export.json"'
    assert json.loads(response.content) == client.get("/v1/me/export", headers=user["headers"]).json()
    assert json.loads(response.content)["cards"][0]["slug"] == "export-me"


def test_deleting_the_account_needs_the_email_typed_and_another_admin(admin):
    client, csrf, email = admin["client"], admin["csrf"], admin["user"]["user"]["email"]
    page = client.get("/app/account").text
    assert "Printed codes of your cards stop answering scans" in page
    wrong = post_form(client, "/app/account/delete", csrf, confirmEmail="someone@else.example")
    assert wrong.status_code == 422 and "exactly as shown" in errors_of(wrong.text)["confirmEmail"]
    assert 'value="someone@else.example"' in wrong.text
    only_admin = post_form(client, "/app/account/delete", csrf, confirmEmail=email)
    assert only_admin.status_code == 409 and "only admin" in errors_of(only_admin.text)["confirmEmail"]
    member = register(client)
    create_card(client, member["headers"], slug="member-card")
    csrf = log_in(client, member["user"]["email"])
    response = post_form(client, "/app/account/delete", csrf, confirmEmail=member["user"]["email"].upper())
    assert response.status_code == 303 and response.headers["location"] == "/app/login"
    assert "everything it held are deleted" in flash_of(client, "/app/login")
    assert client.get("/c/member-card", follow_redirects=False).status_code == 410
    assert query(client.app.state.settings, "SELECT count(*) FROM users") == [(1,)]


# --- the team pages --------------------------------------------------------------------

TEAM_GETS = ["/app/team", "/app/team/users/{user_id}", "/app/team/users/{user_id}/deactivate",
             "/app/team/users/{user_id}/transfer?to={user_id}", "/app/team/growth", "/app/team/system", "/app/team/import"]
TEAM_POSTS = [("/app/team/invite", {"email": "x@example.com"}), ("/app/team/users/{user_id}/admin", {"isAdmin": "yes"}),
              ("/app/team/users/{user_id}/deactivate", {}), ("/app/team/users/{user_id}/reactivate", {}),
              ("/app/team/users/{user_id}/transfer", {"to": "{user_id}"}), ("/app/team/import", {}),
              ("/app/team/import/confirm", {"file": "ZW1haWwsZnVsbE5hbWUKYUB4LmV4YW1wbGUsQQo="})]


@pytest.fixture(scope="module")
def member_console(tmp_path_factory):
    """A member (not an admin) logged in, and the admin's id: every team page must refuse them."""
    settings = make_settings(tmp_path_factory.mktemp("member"))
    with TestClient(create_app(settings), base_url=ORIGIN) as client:
        admin = register(client)
        member = register(client)
        yield client, admin["user"]["userId"], log_in(client, member["user"]["email"])


@pytest.mark.parametrize("path", TEAM_GETS)
def test_a_member_gets_the_403_page_on_every_team_page(member_console, path):
    client, admin_id, _ = member_console
    response = client.get(path.format(user_id=admin_id))
    assert response.status_code == 403 and "Only the team&#39;s admins can open the Team pages" in response.text
    assert ">Team</a>" not in response.text  # nor is Team in their nav


@pytest.mark.parametrize("path, fields", TEAM_POSTS)
def test_a_member_cannot_post_any_team_form(member_console, path, fields):
    client, admin_id, csrf = member_console
    data = {k: v.format(user_id=admin_id) for k, v in fields.items()}
    response = post_form(client, path.format(user_id=admin_id), csrf, **data)
    assert response.status_code == 403
    settings = client.app.state.settings
    assert query(settings, "SELECT count(*) FROM users WHERE is_admin AND deactivated_at IS NULL") == [(1,)]
    assert query(settings, "SELECT count(*) FROM team_invitations") == [(0,)]


def test_the_admin_invites_by_email_and_searches_the_users(admin):
    client, csrf = admin["client"], admin["csrf"]
    page = client.get("/app/team").text
    assert 'aria-current="page">Team' in page and "No invitation is waiting" in page and "(you)" in page
    bad = post_form(client, "/app/team/invite", csrf, email="nobody")
    assert bad.status_code == 422 and set(errors_of(bad.text)) == {"email"} and 'value="nobody"' in bad.text
    taken = post_form(client, "/app/team/invite", csrf, email=admin["user"]["user"]["email"])
    assert errors_of(taken.text) == {"email": "This address has an account already"}
    invited = unique_email()
    response = post_form(client, "/app/team/invite", csrf, email=invited)
    assert response.status_code == 303 and flash_of(client, "/app/team") == "Invitation sent."
    assert invited in client.get("/app/team").text
    assert links(client, invited, "/app/register?invite=")
    other = register(client, email="zed.person@example.com")
    found = client.get("/app/team?q=ZED.").text
    assert "zed.person@example.com" in found and admin["user"]["user"]["email"] not in found.split("Invite someone")[0]
    assert f'href="/app/team/users/{other["user"]["userId"]}"' in found
    assert "No user’s email contains" in client.get("/app/team?q=nobody-at-all").text
    # Registering through the link: the invitation proved the address, so no "we sent you an email".
    [invite] = links(client, invited, "/app/register?invite=")
    joined = post_form(client, "/app/register", csrf, email=invited, password=PASSWORD, invite=invite)
    assert joined.status_code == 303 and flash_of(client, "/app/cards") == "Welcome! Your account is ready."


def test_the_admin_changes_roles_deactivates_and_hands_cards_over(admin):
    client, csrf, settings = admin["client"], admin["csrf"], admin["client"].app.state.settings
    member, heir = register(client), register(client)
    member_id, heir_id = member["user"]["userId"], heir["user"]["userId"]
    card = create_card(client, member["headers"], slug="handed-over")
    base = f"/app/team/users/{member_id}"
    page = client.get(base).text
    assert "Make admin" in page and "Deactivate…" in page and heir["user"]["email"] in page
    assert 'href="/app/team">Team</a>' in page  # breadcrumbs

    assert post_form(client, f"{base}/admin", csrf, isAdmin="yes").status_code == 303
    assert flash_of(client, base) == "They are an admin now."
    post_form(client, f"{base}/admin", csrf, isAdmin="no")
    me = f"/app/team/users/{admin['user']['user']['userId']}"
    last = post_form(client, f"{me}/admin", csrf, isAdmin="no")
    assert last.status_code == 409 and "needs an active admin" in last.text
    assert "This is your own account" in client.get(me).text

    confirm = client.get(f"{base}/deactivate").text
    assert "They can no longer log in." in confirm and "API keys are deleted" in confirm and "keeps working" in confirm
    member_client_session = client.post("/v1/auth/refresh", json={"refreshToken": member["refreshToken"]})
    assert member_client_session.status_code == 200
    assert post_form(client, f"{base}/deactivate", csrf).status_code == 303
    assert "Their cards keep working." in flash_of(client, base)
    assert query(settings, "SELECT deactivated_at IS NOT NULL FROM users WHERE user_id = ?", (member_id,)) == [(1,)]
    assert client.get("/c/handed-over", follow_redirects=False).status_code == 302
    assert "Reactivate" in client.get(base).text

    missing = client.get(f"{base}/transfer")
    assert missing.status_code == 422 and errors_of(missing.text) == {"to": "Choose an active account to take the cards"}
    confirm = client.get(f"{base}/transfer", params={"to": heir_id}).text
    assert "Printed codes keep working" in confirm and heir["user"]["email"] in confirm
    bad = post_form(client, f"{base}/transfer", csrf, to=member_id)
    assert bad.status_code == 422 and "to" in errors_of(bad.text)
    done = post_form(client, f"{base}/transfer", csrf, to=heir_id)
    assert done.status_code == 303 and flash_of(client, base) == "Cards handed over: 1."
    assert query(settings, "SELECT user_id FROM cards WHERE card_id = ?", (card["cardId"],)) == [(heir_id,)]
    assert "no cards to hand over" in client.get(base).text

    assert post_form(client, f"{base}/reactivate", csrf).status_code == 303
    assert flash_of(client, base) == "Account reactivated. They can log in again."
    assert client.get("/app/team/users/no-such-user").status_code == 404


def test_growth_draws_the_weekly_cohorts_and_system_shows_the_diagnostics(admin):
    client, user = admin["client"], admin["user"]
    page = client.get("/app/team/growth").text
    assert "k-factor" in page and 'aria-current="page">30 days' in page
    assert page.count('<rect class="cohort-bar accounts"') >= 4
    assert re.search(r'<th scope="row" class="nowrap">\d{4}-W\d\d</th>\s*<td class="num">1</td>', page)  # the admin's week
    assert 'style=' not in page
    week = client.get("/app/team/growth?period=7d").text
    assert 'aria-current="page">7 days' in week
    assert client.get("/app/team/growth?period=forever").status_code == 200  # the default period
    api = client.get("/v1/viral/k-factor?period=30d", headers=user["headers"]).json()
    assert len(api["cohorts"]) == page.count('<rect class="cohort-bar accounts"')
    system = client.get("/app/team/system").text
    diagnostics = client.get("/v1/admin/diagnostics", headers=user["headers"]).json()
    assert f"<dd>{diagnostics['version']}</dd>" in system and f"<dd>{diagnostics['database']['journalMode']}</dd>" in system
    assert "Up for" in system and "Emails waiting" in system


def test_the_cohort_chart_scales_bars_to_an_axis_of_whole_ticks():
    cohorts = [kfactor.Cohort("2026-W47", 10, 6, 3, 0.5, 0.3), kfactor.Cohort("2026-W48", 0, 0, 0, None, None),
               kfactor.Cohort("2026-W49", 5, 9, 7, 0.78, 1.4)]
    chart = team_pages.cohort_chart(cohorts)
    assert [t["value"] for t in chart["ticks"]] == [0, 5, 10, 15, 20]  # 10 is the largest bar: the axis tops at 20
    bars = {(g["label"], b["kind"]): b for g in chart["groups"] for b in g["bars"]}
    assert bars[("W47", "accounts")]["height"] == bars[("W49", "conversions")]["height"] * 10 / 7 == pytest.approx(88.0)  # of 176 units
    assert bars[("W48", "accounts")]["height"] == 0 and bars[("W48", "accounts")]["y"] == chart["baseline"]
    assert all(b["y"] + b["height"] == pytest.approx(chart["baseline"]) for b in bars.values())
    assert all(chart["left"] <= b["x"] and b["x"] + b["width"] <= chart["plot_right"] for b in bars.values())
    assert team_pages.cohort_chart([])["groups"] == []


# --- CSRF and the Origin check on this module's forms ---------------------------------------

FORMS = [
    ("/app/password-reset", {"email": "a@example.com"}),
    ("/app/password-reset/" + "t" * 43, {"newPassword": PASSWORD}),
    ("/app/account/email", {"newEmail": "new@example.com", "password": PASSWORD}),
    ("/app/account/email/" + "t" * 43, {}),
    ("/app/account/password", {"currentPassword": PASSWORD, "newPassword": "x" * 20}),
    ("/app/account/consent", {"marketingConsent": "yes"}),
    ("/app/account/verify-email", {}),
    ("/app/account/delete", {"confirmEmail": "{email}"}),
    *TEAM_POSTS,
]


@pytest.mark.parametrize("path, fields", FORMS)
@pytest.mark.parametrize("token, headers", [("missing", {}), ("right", {"Origin": "https://evil.example"})])
def test_every_account_and_team_form_refuses_a_post_without_the_token_or_from_another_origin(
    forms_console, path, fields, token, headers
):
    client, _, csrf = forms_console
    settings = client.app.state.settings
    [(user_id, email)] = query(settings, "SELECT user_id, email FROM users")
    data = {k: v.format(user_id=user_id, email=email) for k, v in fields.items()}
    data |= {"_csrf_token": csrf} if token == "right" else {}
    before = query(settings, "SELECT * FROM users"), query(settings, "SELECT count(*) FROM email_outbox")
    response = client.post(path.format(user_id=user_id), data=data, headers=headers, follow_redirects=False)
    assert response.status_code == 403 and "Not allowed" in response.text
    assert (query(settings, "SELECT * FROM users"), query(settings, "SELECT count(*) FROM email_outbox")) == before
    assert query(settings, "SELECT count(*) FROM web_sessions") == [(1,)]
    assert query(settings, "SELECT count(*) FROM team_invitations") == [(0,)]
