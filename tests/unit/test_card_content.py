"""What a card holds (SPEC §8): the name rule, the typed lists and their limits, the single
fields mirroring the lists, migration 0010, the vCard (3.0 and 4.0, parsed with vobject)
and what a static code leaves out."""

from __future__ import annotations

import base64
import re
import shutil
from html import unescape as html_unescape

import pytest
import vobject

from app import db as dbmodule
from app.cards import vcard
from app.cards.content import StructuredName, join_name, split_full_name
from app.cards.store import card_from_row
from app.db import migrate
from app.sqlite import sqlite3
from tests.support.app import assert_problem, create_card, make_settings
from tests.support.console import errors_of, log_in, post_form
from tests.support.db import query
from tests.support.qr import decode_png

# --- the name rule -------------------------------------------------------------------


@pytest.mark.parametrize(
    "full_name, expected",
    [
        ("Dr. Robert de la Cruz Jr.", ("Dr.", "Robert", "", "de la Cruz", "Jr.")),
        ("Ludwig van Beethoven", ("", "Ludwig", "", "van Beethoven", "")),
        ("Johannes Diderik van der Waals", ("", "Johannes", "Diderik", "van der Waals", "")),
        ("Wernher von Braun", ("", "Wernher", "", "von Braun", "")),
        ("Leonardo di Caprio", ("", "Leonardo", "", "di Caprio", "")),
        ("Mohammed bin Salman", ("", "Mohammed", "", "bin Salman", "")),
        ("Juan Carlos de los Santos", ("", "Juan", "Carlos", "de los Santos", "")),
        ("Cher", ("", "Cher", "", "", "")),
        ("Jane Doe, Ph.D.", ("", "Jane", "", "Doe", "Ph.D.")),
        ("Jane Doe Ph.D.", ("", "Jane", "", "Doe", "Ph.D.")),
        ("Martin Luther King III", ("", "Martin", "Luther", "King", "III")),
        ("Cruz, Robert", ("", "Robert", "", "Cruz", "")),
        ("de la Cruz, Dr. Robert, Jr.", ("Dr.", "Robert", "", "de la Cruz", "Jr.")),
        ("Robert Cruz, Ph.D., MBA", ("", "Robert", "", "Cruz", "Ph.D., MBA")),
        ("Prof. Dr. Hans Peter Müller", ("Prof. Dr.", "Hans", "Peter", "Müller", "")),
        ("Van Morrison", ("", "Van", "", "Morrison", "")),  # the first word is never a particle
        ("John V", ("", "John", "", "V", "")),  # a bare "V" is an initial, not a fifth
        ("Dr.", ("", "Dr.", "", "", "")),  # a title alone is the name
        ("  Mary   Ann  Smith ", ("", "Mary", "Ann", "Smith", "")),
    ],
)
def test_a_full_name_is_split_keeping_particles_and_suffixes(full_name, expected):
    name = split_full_name(full_name)
    assert (name.prefix, name.given, name.middle, name.family, name.suffix) == expected


def test_a_structured_name_reads_back_as_its_full_name():
    assert join_name(StructuredName(prefix="Dr.", given="Robert", family="de la Cruz", suffix="Jr.")) == "Dr. Robert de la Cruz Jr."
    assert join_name(split_full_name("Johannes Diderik van der Waals")) == "Johannes Diderik van der Waals"


# --- the API -------------------------------------------------------------------------

RICH = {
    "name": {"prefix": "Dr.", "given": "Robert", "family": "de la Cruz", "suffix": "Jr."},
    "pronouns": "he/him",
    "headline": "Builds bridges, ships calm software; keeps\\backslashes.",
    "organization": "Acme",
    "department": "R&D",
    "title": "CTO",
    "phones": [
        {"type": "mobile", "number": "+1 555 010 2030"},
        {"type": "work", "number": "+1 555 010 9999", "ext": "204"},
        {"type": "fax", "number": "+1 555 010 8888"},
    ],
    "emails": [{"type": "work", "address": "rob@acme.example"}, {"type": "home", "address": "rob@home.example"}],
    "addresses": [{"type": "work", "street": "1 Main St, Suite 4", "locality": "Springfield", "region": "IL",
                   "postalCode": "62701", "country": "USA"}],
    "links": [{"label": "Website", "url": "https://acme.example"}, {"label": "Blog", "url": "https://rob.example/a,b"}],
    "socials": [{"network": "linkedin", "url": "https://www.linkedin.com/in/rob"}, {"url": "https://github.com/rob"}],
    "accentColor": "#0b6bcb",
}


def test_a_rich_card_is_answered_whole_with_its_single_fields_mirrored(client, user):
    response = client.post("/v1/cards", json=RICH, headers=user["headers"])
    assert response.status_code == 201, response.text
    card = response.json()
    assert card["fullName"] == "Dr. Robert de la Cruz Jr."
    assert card["name"] == {"prefix": "Dr.", "given": "Robert", "middle": "", "family": "de la Cruz", "suffix": "Jr."}
    assert (card["phone"], card["email"], card["website"]) == ("+1 555 010 2030", "rob@acme.example", "https://acme.example")
    assert card["phones"][1] == {"type": "work", "number": "+1 555 010 9999", "ext": "204"}
    assert card["addresses"][0]["postalCode"] == "62701"
    assert card["socials"][1]["network"] == "github"  # told by the host when left out
    assert (card["pronouns"], card["department"], card["accentColor"]) == ("he/him", "R&D", "#0b6bcb")
    assert client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).json() == card


def test_only_a_full_name_is_split_by_the_rule(client, user):
    card = create_card(client, user["headers"], fullName="Dr. Robert de la Cruz Jr.")
    assert card["name"] == {"prefix": "Dr.", "given": "Robert", "middle": "", "family": "de la Cruz", "suffix": "Jr."}
    assert card["phones"] == [] and card["emails"] == [{"type": "work", "address": "jane@example.com"}]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"phones": [{"type": "mobile", "number": "+1 555 0100"}] * 6}, "phones"),
        ({"phones": [{"type": "pager", "number": "+1 555 0100"}]}, "phones[0].type"),
        ({"phones": [{"number": "call me"}]}, "phones[0].number"),
        ({"phones": [{"number": "+1 555 0100", "ext": "12a"}]}, "phones[0].ext"),
        ({"emails": [{"address": "nope"}]}, "emails[0].address"),
        ({"emails": [{"address": "a@b.co"}] * 6}, "emails"),
        ({"addresses": [{"locality": "X"}] * 4}, "addresses"),
        ({"addresses": [{"type": "work"}]}, "addresses[0]"),
        ({"addresses": [{"postalCode": "1" * 21}]}, "addresses[0].postalCode"),
        ({"links": [{"url": "https://a.example"}] * 11}, "links"),
        ({"links": [{"url": "javascript:alert(1)"}]}, "links[0].url"),
        ({"socials": [{"network": "myspace", "url": "https://myspace.com/x"}]}, "socials[0].network"),
        ({"socials": [{"url": "https://x.example"}] * 11}, "socials"),
        ({"headline": "h" * 281}, "headline"),
        ({"headline": "two\nlines"}, "headline"),
        ({"accentColor": "blue"}, "accentColor"),
        ({"name": {"given": "", "family": " "}}, "name"),
        ({"name": {"given": "A", "nickname": "B"}}, "name"),  # "unknown field `nickname`"
        ({"phone": "+1 555 0100", "phones": [{"number": "+1 555 0199"}]}, "phone"),
        ({"emails": []}, "emails"),
    ],
)
def test_bad_content_is_a_422_naming_the_field(client, user, body, field):
    base = {"fullName": "Jane Doe"} | ({} if "emails" in body else {"email": "jane@example.com"})
    response = client.post("/v1/cards", json=base | body, headers=user["headers"])
    problem = assert_problem(response, 422)
    assert field in [error["field"] for error in problem["errors"]], problem


def test_a_card_needs_a_name_and_an_email(client, user):
    problem = assert_problem(client.post("/v1/cards", json={"email": "a@b.co"}, headers=user["headers"]), 422)
    assert problem["errors"][0]["field"] == "fullName"
    problem = assert_problem(client.post("/v1/cards", json={"fullName": "A"}, headers=user["headers"]), 422)
    assert problem["errors"][0]["field"] == "email"


def test_the_single_fields_mirror_the_first_entry_of_their_lists(client, user):
    headers = user["headers"]
    card = client.post("/v1/cards", json=RICH, headers=headers).json()
    url = f"/v1/cards/{card['cardId']}"

    def patch(**body) -> dict:
        response = client.patch(url, json=body, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    # The single field alone replaces the first entry's value, keeping its type or label.
    card = patch(phone="+44 20 7946 0958")
    assert card["phones"][0] == {"type": "mobile", "number": "+44 20 7946 0958", "ext": None}
    assert len(card["phones"]) == 3
    card = patch(website="https://new.example")
    assert card["links"][0] == {"label": "Website", "url": "https://new.example"} and len(card["links"]) == 2
    card = patch(email="new@acme.example")
    assert card["emails"][0] == {"type": "work", "address": "new@acme.example"} and len(card["emails"]) == 2
    # null removes the first entry: the next one is the single field now.
    card = patch(phone=None)
    assert card["phone"] == "+1 555 010 9999" and len(card["phones"]) == 2
    # The list sets the single field.
    card = patch(phones=[{"type": "home", "number": "+1 555 010 7777"}], links=[], emails=[{"address": "x@y.example"}])
    assert (card["phone"], card["website"], card["email"]) == ("+1 555 010 7777", None, "x@y.example")
    # Sent together, the two must agree.
    assert patch(phone="+1 555 010 7777", phones=[{"number": "+1 555 010 7777"}])["phone"] == "+1 555 010 7777"
    assert_problem(client.patch(url, json={"website": "https://a.example", "links": []}, headers=headers), 422)
    # A new fullName is split again; a new name makes the fullName.
    assert patch(fullName="Cruz, Robert")["name"]["family"] == "Cruz"
    assert patch(name={"given": "Ana", "family": "di Stefano"})["fullName"] == "Ana di Stefano"
    # An old client's card (one phone, one email) keeps working as before.
    old = create_card(client, headers, phone="+1 555 010 1111", website="https://old.example")
    assert old["phones"] == [{"type": "mobile", "number": "+1 555 010 1111", "ext": None}]
    assert old["links"] == [{"label": "Website", "url": "https://old.example"}]


def test_migration_0010_carries_every_existing_card_over(tmp_path, monkeypatch):
    path = make_settings(tmp_path).database_path
    older = tmp_path / "older-migrations"
    older.mkdir()
    for file in sorted(dbmodule.MIGRATIONS_DIR.glob("*.sql")):
        if file.name < "0010":
            shutil.copy(file, older / file.name)
    with monkeypatch.context() as patch:
        patch.setattr(dbmodule, "MIGRATIONS_DIR", older)
        migrate(path)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO users (user_id, email, password_hash, created_at) VALUES ('u', 'o@example.com', 'x', 't')")
        for i, (name, phone, website) in enumerate(
            [("Dr. Robert de la Cruz Jr.", "+1 555 010 2030", "https://a.example"), ("Cher", None, None)]
        ):
            conn.execute(
                """INSERT INTO cards (card_id, user_id, slug, full_name, email, phone, website, created_at, updated_at)
                VALUES (?, 'u', ?, ?, 'o@example.com', ?, ?, 't', 't')""",
                (f"c{i}", f"slug-{i}", name, phone, website),
            )
    conn.close()
    assert "0010_card_content.sql" in migrate(path)
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    from app.cards.store import CARD_COLUMNS

    rows = conn.execute(f"SELECT {CARD_COLUMNS} FROM cards ORDER BY id").fetchall()
    conn.close()
    rob, cher = (card_from_row(row) for row in rows)
    assert (rob.name.prefix, rob.name.given, rob.name.family, rob.name.suffix) == ("Dr.", "Robert", "de la Cruz", "Jr.")
    assert [(p.type, p.number) for p in rob.phones] == [("mobile", "+1 555 010 2030")]
    assert [(e.type, e.address) for e in rob.emails] == [("work", "o@example.com")]
    assert [(link.label, link.url) for link in rob.links] == [("Website", "https://a.example")]
    assert (cher.phones, cher.links, cher.name.given) == ((), (), "Cher")


# --- the vCard -----------------------------------------------------------------------


def _rich_card(client, user, **changes) -> dict:
    response = client.post("/v1/cards", json=RICH | changes, headers=user["headers"])
    assert response.status_code == 201, response.text
    return response.json()


def _lines(text: str) -> list[str]:
    """The content lines of a vCard, unfolded."""
    return text.replace("\r\n ", "").split("\r\n")


@pytest.mark.parametrize("version", [3, 4])
def test_the_vcard_carries_every_field_typed(client, user, version):
    card = _rich_card(client, user)
    response = client.get(f"/p/{card['slug']}.vcf" + ("?v=4" if version == 4 else ""))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/vcard")
    text = response.text
    assert text.startswith(f"BEGIN:VCARD\r\nVERSION:{version}.0\r\n") and text.endswith("END:VCARD\r\n")
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    parsed = vobject.readOne(text)
    n = parsed.n.value
    assert (n.family, n.given, n.prefix, n.suffix) == ("de la Cruz", "Robert", "Dr.", "Jr.")
    assert parsed.fn.value == "Dr. Robert de la Cruz Jr."
    assert parsed.org.value == ["Acme", "R&D"]
    assert parsed.note.value == RICH["headline"]
    adr = parsed.adr.value
    assert (adr.street, adr.city, adr.region, adr.code, adr.country) == ("1 Main St, Suite 4", "Springfield", "IL", "62701", "USA")
    tels = [(tel.params["TYPE"], tel.value) for tel in parsed.contents["tel"]]
    lines = _lines(text)
    if version == 3:
        assert tels == [
            (["CELL"], "+1 555 010 2030"), (["WORK", "VOICE"], "+1 555 010 9999 x204"), (["FAX"], "+1 555 010 8888"),
        ]
        assert [e.params["TYPE"] for e in parsed.contents["email"]] == [["INTERNET", "WORK"], ["INTERNET", "HOME"]]
        assert "ADR;TYPE=WORK:;;1 Main St\\, Suite 4;Springfield;IL;62701;USA" in lines
        assert "item2.URL:https://rob.example/a,b" in lines and "item2.X-ABLabel:Blog" in lines
    else:
        assert tels == [
            (["cell"], "tel:+1-555-010-2030"), (["work", "voice"], "tel:+1-555-010-9999;ext=204"), (["fax"], "tel:+1-555-010-8888"),
        ]
        assert parsed.pronouns.value == "he/him"
        assert "URL:https://rob.example/a,b" in lines  # a URI, not backslash-escaped
    socials = [(s.params["TYPE"], s.value) for s in parsed.contents["x-socialprofile"]]
    assert socials == [(["linkedin"], "https://www.linkedin.com/in/rob"), (["github"], "https://github.com/rob")]
    assert "X-SOCIALPROFILE;TYPE=linkedin:https://www.linkedin.com/in/rob" in lines


def test_long_unicode_lines_are_folded_between_characters(client, user):
    headline = "Zoë 日本語 🙂 " * 20  # 1-, 2-, 3- and 4-byte characters
    card = _rich_card(client, user, headline=headline.strip()[:280])
    text = client.get(f"/p/{card['slug']}.vcf").text
    physical = text.split("\r\n")
    assert max(len(line.encode()) for line in physical) <= 75
    note = [line for line in physical if line.startswith("NOTE:")][0]
    assert len(note.encode()) > 70  # folded: more follows on lines that begin with a space
    assert vobject.readOne(text).note.value == headline.strip()[:280]


def test_fold_never_splits_a_utf8_sequence():
    for char in ("é", "日", "🙂"):
        line = "NOTE:" + char * 100
        folded = vcard.fold(line)
        pieces = folded.split("\r\n")
        assert all(len(piece.encode()) <= 75 for piece in pieces)
        assert all(piece.startswith(" ") for piece in pieces[1:])
        assert "".join(piece[1:] if i else piece for i, piece in enumerate(pieces)) == line  # each piece decodes whole


@pytest.mark.parametrize("version", [3, 4])
def test_a_photo_is_written_as_base64_jpeg(client, user, settings, version):
    card = _rich_card(client, user)
    conn = sqlite3.connect(settings.database_path)
    conn.row_factory = sqlite3.Row
    from app.cards.store import CARD_COLUMNS

    row = conn.execute(f"SELECT {CARD_COLUMNS} FROM cards WHERE card_id = ?", (card["cardId"],)).fetchone()
    conn.close()
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"
    text = vcard.vcard(card_from_row(row), version, photo_jpeg=jpeg)
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    parsed = vobject.readOne(text)
    if version == 3:
        assert "PHOTO;ENCODING=b;TYPE=JPEG:" in text
        assert parsed.photo.value == jpeg  # vobject decodes ENCODING=b
    else:
        value = "".join(_lines(text)).split("PHOTO:", 1)[1].split("END:VCARD")[0]
        assert value.startswith("data:image/jpeg;base64,")
        assert base64.b64decode(value.removeprefix("data:image/jpeg;base64,")) == jpeg
    assert "PHOTO" not in vcard.vcard(card_from_row(row), version)


# --- static codes --------------------------------------------------------------------


def test_a_static_code_keeps_what_fits_its_level_and_says_what_it_left_out(client, user):
    long_links = [{"label": f"Link {i}", "url": f"https://example.com/{'p' * 100}/{i}"} for i in range(10)]
    card = _rich_card(client, user, links=long_links)
    url = f"/v1/cards/{card['cardId']}/qr"
    response = client.get(url, params={"mode": "static", "size": 2048, "ecc": "H"}, headers=user["headers"])
    assert response.status_code == 200, response.text
    assert response.headers["x-left-out"] == "socials, links"
    text, _ = decode_png(response.content)
    parsed = vobject.readOne(text)
    assert parsed.n.value.family == "de la Cruz" and len(parsed.contents["tel"]) == 3
    assert "X-SOCIALPROFILE" not in text and "PHOTO" not in text
    assert len(parsed.contents.get("url", [])) < 10
    full = client.get(url, params={"mode": "static", "size": 2048, "ecc": "L"}, headers=user["headers"])
    assert "x-left-out" not in full.headers
    assert len(vobject.readOne(decode_png(full.content)[0]).contents["url"]) == 10



# --- the public page -----------------------------------------------------------------


def test_the_public_page_shows_every_field_with_its_type_label_and_link(client, user):
    card = _rich_card(client, user)
    page = client.get(f"/p/{card['slug']}").text
    for text in ("Dr. Robert de la Cruz Jr.", "he/him", "CTO · R&amp;D · Acme", "Builds bridges, ships calm software"):
        assert text in page, text
    # Each field is a row: the value, then its type label (the row's icon aside).
    assert 'href="tel:+15550102030"' in page and '<span class="type">Mobile</span>' in page
    assert 'href="tel:+15550109999,204"' in page and "+1 555 010 9999 ext. 204" in page and '<span class="type">Work</span>' in page
    assert '<span class="type">Fax</span>' in page
    assert 'href="mailto:rob@home.example"' in page and '<span class="type">Home email</span>' in page
    assert 'href="https://www.google.com/maps/search/?api=1&amp;query=1%20Main%20St%2C%20Suite%204%2C%20Springfield' in page
    assert '<span class="value">1 Main St, Suite 4, Springfield, IL, 62701, USA</span><span class="type">Work address</span>' in page
    assert '<span class="value">https://rob.example/a,b</span><span class="type">Blog</span>' in page
    assert 'aria-label="LinkedIn"' in page and 'aria-label="GitHub"' in page and 'href="https://github.com/rob"' in page


# --- the console ---------------------------------------------------------------------


@pytest.fixture
def console(client, user):
    """A client logged in to the console as `user`, with its CSRF token."""
    return client, user, log_in(client, user["user"]["email"])


def _form_fields(html: str) -> dict[str, str]:
    """The inputs and selects of a drawn form with their values, as a browser would send them."""
    fields = dict(re.findall(r'<input id="[^"]*" name="([^"]+)" type="(?!password)[^"]*" value="([^"]*)"', html))
    fields |= dict(re.findall(r'<input type="hidden" name="([^"]+-rows)" value="(\d+)"', html))
    for name, options in re.findall(r'<select id="[^"]*" name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        selected = re.search(r'<option value="([^"]*)" selected', options) or re.search(r'<option value="([^"]*)"', options)
        fields[name] = selected[1]
    return {name: html_unescape(value) for name, value in fields.items()}


def test_the_console_form_adds_and_removes_rows_without_javascript(console):
    client, _, csrf = console
    form = client.get("/app/cards/new").text
    assert 'name="phones-rows" value="1"' in form and 'name="phone"' in form and 'name="phones-1-number"' not in form
    fields = _form_fields(form) | {"fullName": "Dr. Robert de la Cruz Jr.", "email": "rob@acme.example", "phone": "+1 555 010 2030"}
    # "Add another phone" draws the form again with a second row, keeping what was typed; nothing is saved.
    added = post_form(client, "/app/cards/new", csrf, **fields, add="phones")
    assert added.status_code == 200 and 'name="phones-1-number"' in added.text and 'value="+1 555 010 2030"' in added.text
    fields = _form_fields(added.text) | {"phones-1-number": "+1 555 010 9999", "phones-1-type": "work", "phones-1-ext": "204"}
    # Remove the first: the second moves up into the single field's place.
    removed = post_form(client, "/app/cards/new", csrf, **fields, remove="phones-0")
    assert removed.status_code == 200
    fields = _form_fields(removed.text)
    assert fields["phone"] == "+1 555 010 9999" and fields["phones-0-type"] == "work" and fields["phones-0-ext"] == "204"
    assert query(client.app.state.settings, "SELECT count(*) FROM cards") == [(0,)]
    fields |= {"socials-0-url": "https://github.com/rob", "socials-0-network": "github", "addresses-0-locality": "Springfield",
               "addresses-0-country": "USA", "headline": "Ships calm software", "pronouns": "he/him", "department": "R&D"}
    created = post_form(client, "/app/cards/new", csrf, **fields)
    assert created.status_code == 303, errors_of(created.text)
    card_id = created.headers["location"].rsplit("/", 1)[1]
    row = query(client.app.state.settings, "SELECT name, phones, socials, addresses, headline, pronouns, department FROM cards")[0]
    assert '"family":"de la Cruz"' in row[0] and '"ext":"204"' in row[1] and '"network":"github"' in row[2]
    assert '"locality":"Springfield"' in row[3] and row[4:] == ("Ships calm software", "he/him", "R&D")
    # The edit form shows every entry, and the card page says what a static code leaves out.
    edit = client.get(f"/app/cards/{card_id}/edit").text
    assert 'value="https://github.com/rob"' in edit and 'value="Springfield"' in edit and "Ships calm software</textarea>" in edit
    assert "never holds the photo" in client.get(f"/app/cards/{card_id}").text


def test_console_list_errors_are_shown_next_to_their_field(console):
    client, _, csrf = console
    fields = _form_fields(client.get("/app/cards/new").text) | {"fullName": "Jane Doe", "email": "jane@example.com"}
    fields |= {"phone": "call me", "phones-0-ext": "12a", "socials-0-url": "github.com/jane", "accentColor": "blue",
               "links-0-label": "Blog"}
    response = post_form(client, "/app/cards/new", csrf, **fields)
    assert response.status_code == 422
    errors = errors_of(response.text)
    assert errors == {
        "phone": "Use digits, spaces and + ( ) . - only", "phones-0-ext": "Use digits only",
        "socials-0-url": "Enter the full address, starting with https:// or http://",
        "accentColor": "Enter a colour like #0b6bcb", "website": "Enter the website, or remove the row",
    }
    assert '<a href="#socials-0-url">' in response.text  # the summary links to the field


def test_a_static_code_too_full_for_high_is_listed_on_the_card_page(console):
    client, user, _ = console
    links = [{"label": f"L{i}", "url": f"https://example.com/{'p' * 150}/{i}"} for i in range(10)]
    card = create_card(client, user["headers"], links=links, socials=[{"url": "https://github.com/x"}])
    page = client.get(f"/app/cards/{card['cardId']}").text
    assert "High: leaves out social profiles, some links" in page and "Low: holds everything" in page
