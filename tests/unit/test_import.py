"""The bulk import (SPEC §10, POST /v1/admin/import): hostile files refused whole with
nothing written, per-row errors, the dry run writing nothing, idempotency by email, the
invitation emailed and the imported card handed to its person when they register, and
formula-like cells kept as text but neutralised in CSV exports. One app for the module."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from app.main import create_app
from tests.support.app import PASSWORD, assert_problem, make_settings, register
from tests.support.console import errors_of, log_in, post_form
from tests.support.db import execute, query
from tests.support.leads import page_token, send_details
from tests.support.mail import links

CSV = {"Content-Type": "text/csv"}
TABLES = ("cards", "team_invitations", "imported_cards", "email_outbox", "events")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[tuple[TestClient, dict, dict]]:
    settings = make_settings(tmp_path_factory.mktemp("import"))
    with TestClient(create_app(settings), base_url="https://qr.example.test") as client:
        yield client, register(client, "admin@example.com"), register(client, "member@example.com")


def counts(client) -> dict[str, int]:
    """The rows an import could write. card.scanned events are left out: the counters write
    them in the background, a second after an earlier test's page view."""
    settings = client.app.state.settings
    found = {table: query(settings, f"SELECT count(*) FROM {table}")[0][0] for table in TABLES}  # noqa: S608 (fixed names)
    found["events"] = query(settings, "SELECT count(*) FROM events WHERE type != 'card.scanned'")[0][0]
    return found


def send(client, admin, body: bytes | str, *, dry_run: bool = False, headers: dict | None = None):
    content = body.encode() if isinstance(body, str) else body
    params = {"dryRun": "true"} if dry_run else {}
    return client.post("/v1/admin/import", content=content, params=params, headers={**CSV, **admin["headers"], **(headers or {})})


GOOD_HEADER = "email,fullName,title,phone\r\n"
HOSTILE = [
    # (case, body, extra headers, status, words in the detail)
    ("not text/csv", GOOD_HEADER + "a@x.example,A,,\r\n", {"Content-Type": "application/json"}, 415, "text/csv"),
    ("another charset named", GOOD_HEADER + "a@x.example,A,,\r\n", {"Content-Type": "text/csv; charset=latin-1"}, 415, "UTF-8"),
    ("UTF-16 with its mark", (GOOD_HEADER + "a@x.example,A,,\r\n").encode("utf-16"), {}, 422, "UTF-16"),
    ("UTF-16 without a mark", (GOOD_HEADER + "a@x.example,A,,\r\n").encode("utf-16-le"), {}, 422, "UTF-8"),
    ("Latin-1 bytes", (GOOD_HEADER + "jose@x.example,José Núñez,,\r\n").encode("latin-1"), {}, 422, "not UTF-8"),
    ("50 MB", b"email,fullName\r\n" + b"x" * (50 * 1024 * 1024), {}, 413, "2 MB"),
    ("10,000 rows", GOOD_HEADER + "".join(f"p{i}@x.example,P {i},,\r\n" for i in range(10_000)), {}, 422, "1000 rows"),
    ("no email column", "fullName,title\r\nJane,CEO\r\n", {}, 422, "email"),
    ("no header at all", "jane@x.example,Jane Doe\r\n", {}, 422, "header"),
    ("an unknown column", "email,fullName,salary\r\na@x.example,A,100\r\n", {}, 422, "salary"),
    ("a repeated column", "email,fullName,Full Name\r\na@x.example,A,B\r\n", {}, 422, "twice"),
    ("empty", "", {}, 422, "empty"),
    ("a header and no rows", GOOD_HEADER + "\r\n\r\n", {}, 422, "no rows"),
    ("an unterminated quote", GOOD_HEADER + 'a@x.example,"Jane,,\r\n', {}, 422, "CSV"),
]


@pytest.mark.parametrize("case, body, headers, status, words", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_a_hostile_file_is_refused_whole_and_writes_nothing(world, case, body, headers, status, words):
    client, admin, _ = world
    before = counts(client)
    for dry_run in (True, False):
        problem = assert_problem(send(client, admin, body, dry_run=dry_run, headers=headers), status)
        assert words in problem["detail"], problem
    assert counts(client) == before


@pytest.mark.parametrize("caller, status", [("anonymous", 401), ("member", 403)])
def test_only_an_admin_imports(world, caller, status):
    client, _, member = world
    who = member if caller == "member" else {"headers": {}}
    before = counts(client)
    assert_problem(send(client, who, GOOD_HEADER + "z@x.example,Z,,\r\n"), status)
    assert counts(client) == before


def test_rows_are_checked_one_by_one_dry_run_first_and_twice_is_once(world):
    client, admin, member = world
    settings = client.app.state.settings
    body = (
        "\ufeffEmail,Full Name,Title,Phone,Organization,Website,department\r\n"  # Excel's BOM; headers in any spelling
        f"{member['user']['email'].upper()},Mem Ber,Designer,+1 555 0101,Acme,https://acme.example,\r\n"  # 2: an account
        "new.hire@x.example,\"@Hire, New\",\"=cmd|' /C calc'!A0\",,,\r\n"  # 3: no account; a formula kept as text
        "\r\n"  # 4: blank, skipped
        'quote@x.example,"Ann ""The Boss"" Lee",@SUM(A1),+1 555 0102,+Org,,-Sales\r\n'  # 5: quotes in a cell, formula-like cells
        'New.Hire@x.example,Again,,,,\r\n'  # 6: the same email as row 3
        'bad-phone@x.example,Bad Phone,,call me,,\r\n'  # 7: a bad phone
        '"multi@x.example","Two\nLines",,,,\r\n'  # 8: a line break inside a quoted name
        'site@x.example,Site,,,,javascript:alert(1)\r\n'  # 9: not an http(s) address
        ',No Email,,,,\r\n'  # 10: no email
    )
    expected = [(2, "created"), (3, "invited"), (5, "invited"), (6, "error"), (7, "error"), (8, "error"), (9, "error"), (10, "error")]
    before = counts(client)
    preview = send(client, admin, body, dry_run=True)
    assert preview.status_code == 200, preview.text
    assert [(row["row"], row["status"]) for row in preview.json()["rows"]] == expected
    assert preview.json()["dryRun"] is True and counts(client) == before  # nothing written
    errors = {row["row"]: row["error"] for row in preview.json()["rows"] if row["status"] == "error"}
    assert "row 3" in errors[6] and "phone" in errors[7] and "line break" in errors[8] and "website" in errors[9]
    assert "email" in errors[10]

    done = send(client, admin, body).json()
    assert [(row["row"], row["status"]) for row in done["rows"]] == expected
    assert (done["created"], done["invited"], done["exists"], done["errors"]) == (1, 2, 0, 5)
    assert all(row.get("cardId") for row in done["rows"] if row["status"] != "error")
    member_card = client.get("/v1/cards", headers=member["headers"]).json()["items"][0]
    assert (member_card["fullName"], member_card["phone"], member_card["website"]) == ("Mem Ber", "+1 555 0101", "https://acme.example")
    # Formula-like cells are stored as typed.
    stored = dict(query(settings, "SELECT email, title FROM cards WHERE email IN ('new.hire@x.example', 'quote@x.example')"))
    assert stored == {"new.hire@x.example": "=cmd|' /C calc'!A0", "quote@x.example": "@SUM(A1)"}
    assert query(settings, "SELECT full_name, organization, department FROM cards WHERE email = 'quote@x.example'") == [
        ('Ann "The Boss" Lee', "+Org", "-Sales")
    ]

    # The same file again: nothing new, every good row `exists`.
    after_first = counts(client)
    again = send(client, admin, body).json()
    assert [(row["row"], row["status"]) for row in again["rows"]] == [
        (row, "exists" if status != "error" else "error") for row, status in expected
    ]
    assert counts(client) == after_first

    # The invitation went out; registering through it hands the imported card over.
    [token] = links(client, "new.hire@x.example", "/app/register?invite=")
    joined = client.post("/v1/auth/register", json={
        "email": "new.hire@x.example", "password": PASSWORD, "marketingConsent": False, "inviteToken": token,
    })
    assert joined.status_code == 201, joined.text
    headers = {"Authorization": f"Bearer {joined.json()['accessToken']}"}
    [card] = client.get("/v1/cards", headers=headers).json()["items"]
    assert card["fullName"] == "@Hire, New" and card["title"] == "=cmd|' /C calc'!A0"
    assert query(settings, "SELECT count(*) FROM imported_cards WHERE email = 'new.hire@x.example'") == [(0,)]
    # Still idempotent once the person has their account.
    assert send(client, admin, body, dry_run=True).json()["rows"][1] == {"row": 3, "status": "exists", "email": "new.hire@x.example"}

    # Every CSV export neutralises what the import kept as typed: the leads' card name here.
    slug = card["slug"]
    assert send_details(client, slug, page_token(client, slug), company="@evil").status_code == 200
    export = client.get("/v1/leads/export.csv", headers=headers)
    [lead] = list(csv.DictReader(io.StringIO(export.text)))
    assert (lead["card"], lead["company"]) == ("'@Hire, New", "'@evil")


def test_an_expired_invitation_is_sent_again_without_a_second_card(world):
    client, admin, _ = world
    settings = client.app.state.settings
    body = GOOD_HEADER + "late@x.example,Late Comer,,\r\n"
    assert send(client, admin, body).json()["rows"][0]["status"] == "invited"
    execute(settings, "UPDATE team_invitations SET expires_at = created_at WHERE email = 'late@x.example'")
    again = send(client, admin, body).json()["rows"][0]
    assert again["status"] == "invited" and "cardId" not in again
    assert query(settings, "SELECT count(*) FROM cards WHERE email = 'late@x.example'") == [(1,)]
    assert query(settings, "SELECT count(*) FROM team_invitations WHERE email = 'late@x.example'") == [(2,)]


def test_the_console_previews_then_imports_the_same_file(world):
    client, admin, _ = world
    token = log_in(client, "admin@example.com")
    assert "Import people from a CSV file" in client.get("/app/team/import").text

    def upload(body: bytes):
        return client.post("/app/team/import", data={"_csrf_token": token},
                           files={"file": ("team.csv", body, "text/csv")}, follow_redirects=False)

    refused = upload("email,fullName\r\nrené@x.example,René\r\n".encode("latin-1"))
    assert refused.status_code == 422 and "UTF-8" in errors_of(refused.text)["file"]
    body = b"email,fullName,title\r\nconsole.one@x.example,Console One,<b>Boss</b>\r\nbroken,Broken,\r\n"
    before = counts(client)
    preview = upload(body)
    assert preview.status_code == 200, preview.text
    assert "Check before importing" in preview.text and "&lt;b&gt;Boss&lt;/b&gt;" in preview.text
    assert "Card and invitation" in preview.text and "Skipped" in preview.text
    assert counts(client) == before  # the preview wrote nothing
    carried = re.search(r'name="file" value="([^"]+)"', preview.text).group(1)
    done = post_form(client, "/app/team/import/confirm", token, file=carried, name="team.csv")
    assert done.status_code == 200 and "Import done" in done.text
    assert query(client.app.state.settings, "SELECT title FROM cards WHERE email = 'console.one@x.example'") == [("<b>Boss</b>",)]
    again = post_form(client, "/app/team/import/confirm", token, file=carried, name="team.csv")  # a reload
    assert "Already there" in again.text
    assert query(client.app.state.settings, "SELECT count(*) FROM cards WHERE email = 'console.one@x.example'") == [(1,)]
    assert post_form(client, "/app/team/import/confirm", token, file="not base64!", name="x").status_code == 422


def test_imported_cards_start_with_the_team_defaults(world):
    """Last in the module: the brand it sets would show on the cards of the tests before."""
    client, admin, _ = world
    brand = {"name": "Acme", "accentColor": "#b4231a", "qrDark": "#1f2a44", "qrLight": "#fffdf5", "logoOnCodes": False,
             "lockedFields": ["organization"], "defaults": {"organization": "Acme Studio", "website": "https://acme.example"}}
    assert client.put("/v1/team/brand", json=brand, headers=admin["headers"]).status_code == 200
    body = "email,fullName,organization\r\nbrand.one@x.example,Brand One,\r\nbrand.two@x.example,Brand Two,Own Org\r\n"
    assert [row["status"] for row in send(client, admin, body).json()["rows"]] == ["invited", "invited"]
    stored = query(client.app.state.settings,
                   "SELECT email, organization, website FROM cards WHERE email LIKE 'brand.%' ORDER BY email")
    # The defaults fill what the file leaves empty; an admin's import is not refused by a lock.
    assert stored == [("brand.one@x.example", "Acme Studio", "https://acme.example"),
                      ("brand.two@x.example", "Own Org", "https://acme.example")]
