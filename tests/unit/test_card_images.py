"""A card's photo and logo (SPEC §8): uploads refused or made clean, stored in SQLite, served
immutable from memory at the primary and from the copy at an edge, and the console's forms."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from app import qr
from app.cards import card_images
from app.cards.store import get_card_by_slug
from app.cards.types import Card
from app.edge import local_copy
from app.public import answers
from app.public.counters import Counters
from app.public.scanner_limit import ScannerLimit
from app.sqlite import sqlite3
from tests.support import images
from tests.support.app import assert_problem, create_card, metric, register
from tests.support.console import csrf_of, log_in

BASE = "https://qr.example.test"


def put(client, user, card, body: bytes, content_type: str | None, kind: str = "photo"):
    headers = {**user["headers"], **({"Content-Type": content_type} if content_type else {})}
    return client.put(f"/v1/cards/{card['cardId']}/{kind}", content=body, headers=headers)


def stored(settings) -> list[tuple]:
    conn = sqlite3.connect(settings.database_path)
    try:
        return conn.execute("SELECT card_id, kind, content_hash, image, thumbnail FROM card_images").fetchall()
    finally:
        conn.close()


def path_of(url: str) -> str:
    return url.removeprefix(BASE)


def served(client, url: str) -> Image.Image:
    response = client.get(path_of(url))
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    return Image.open(io.BytesIO(response.content))


HOSTILE = [
    # (name, body, content type, status)
    ("svg", images.SVG, "image/svg+xml", 415),
    ("svg sent as png", images.SVG, "image/png", 415),
    ("gif", images.gif(), "image/gif", 415),
    ("gif sent as jpeg", images.gif(), "image/jpeg", 415),
    ("text sent as jpeg", b"Hello, this is not a picture at all.\n" * 20, "image/jpeg", 415),
    ("html sent as webp", b"<!doctype html><script>alert(1)</script>", "image/webp", 415),
    ("empty body", b"", "image/jpeg", 415),
    ("no content type", images.jpeg(), None, 415),
    ("truncated jpeg", images.truncated_jpeg(), "image/jpeg", 422),
    ("truncated png", images.png((600, 600))[:-40], "image/png", 422),
    ("bomb past Pillow's own limit", images.png_bomb(20_000, 20_000), "image/png", 413),
    ("bomb past ours", images.png_bomb(10_000, 10_000), "image/png", 413),
    ("over 10 MB", b"\xff\xd8\xff" + b"\0" * (10 * 1024 * 1024), "image/jpeg", 413),
]


@pytest.mark.parametrize(("name", "body", "content_type", "status"), HOSTILE, ids=[row[0] for row in HOSTILE])
def test_hostile_uploads_are_refused_and_nothing_is_stored(client, user, settings, name, body, content_type, status):
    card = create_card(client, user["headers"])
    problem = assert_problem(put(client, user, card, body, content_type), status)
    assert problem["detail"]
    assert stored(settings) == []
    assert client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).json()["photoUrl"] is None


def test_a_bomb_is_small_on_the_wire():
    assert len(images.png_bomb(20_000, 20_000)) < 200_000


def test_metadata_is_stripped(client, user, settings):
    original = Image.open(io.BytesIO(images.jpeg_with_gps()))
    assert original.getexif().get_ifd(0x8825) and original.info.get("icc_profile")  # the upload carries them
    card = create_card(client, user["headers"])
    response = put(client, user, card, images.jpeg_with_gps(), "image/jpeg")
    assert response.status_code == 200, response.text
    [(_, kind, _, image, thumbnail)] = stored(settings)
    assert kind == "photo"
    for blob in (image, thumbnail, client.get(path_of(response.json()["photoUrl"])).content):
        picture = Image.open(io.BytesIO(blob))
        assert picture.format == "JPEG"
        assert not picture.getexif() and not any(key in picture.info for key in images.METADATA_KEYS)
        assert b"Exif" not in blob and b"PhoneMaker" not in blob and b"xmpmeta" not in blob and b"secret place" not in blob


def test_orientation_is_applied_and_the_picture_cropped_square(client, user):
    card = create_card(client, user["headers"])
    response = put(client, user, card, images.jpeg_rotated(), "image/jpeg")
    assert response.status_code == 200, response.text
    picture = served(client, response.json()["photoUrl"]).convert("RGB")
    # The 400×200 landscape shown turned (200×400, red on top), cropped to its middle square.
    assert picture.size == (200, 200)
    red, blue = picture.getpixel((100, 30)), picture.getpixel((100, 170))
    assert red[0] > 150 and red[2] < 100, red
    assert blue[2] > 150 and blue[0] < 100, blue


def test_large_pictures_become_512_and_a_96_thumbnail(client, user):
    card = create_card(client, user["headers"])
    body = put(client, user, card, images.png((1600, 1000)), "image/png").json()
    assert served(client, body["photoUrl"]).size == (512, 512)
    assert served(client, body["photoUrl"].replace(".jpg", "-96.jpg")).size == (96, 96)


def test_a_polyglot_is_stored_as_a_clean_jpeg(client, user, settings):
    """A valid PNG with a zip and an HTML page after it: only its pixels are kept."""
    polyglot = images.png((300, 300)) + b"PK\x03\x04" + b"\0" * 64 + b"<html><script>alert(1)</script></html>"
    card = create_card(client, user["headers"])
    response = put(client, user, card, polyglot, "image/png")
    assert response.status_code == 200, response.text
    [(_, _, _, image, _)] = stored(settings)
    assert image.startswith(b"\xff\xd8") and image.endswith(b"\xff\xd9")
    assert b"PK\x03\x04" not in image and b"<html" not in image
    assert Image.open(io.BytesIO(image)).format == "JPEG"


@pytest.mark.parametrize("kind", ["photo", "logo"])
def test_served_images_are_immutable_and_follow_updates(client, user, settings, kind):
    card = create_card(client, user["headers"], phones=[{"number": "+1 555 0100"}], links=[{"url": "https://example.com"}])
    first = put(client, user, card, images.png(colour=(10, 200, 10)), "image/png", kind).json()
    # The answer is the whole card as GET gives it (its lists and name were once JSON text).
    assert first == client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).json()
    assert first["phones"][0]["number"] == "+1 555 0100" and first["name"]["given"] == "Jane"
    url = first[f"{kind}Url"]
    assert url.startswith(f"{BASE}/p/{card['slug']}/{kind}-") and url.endswith(".jpg")
    assert first["photoUrl" if kind == "logo" else "logoUrl"] is None
    response = client.get(path_of(url))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-type"] == "image/jpeg" and response.headers["x-content-type-options"] == "nosniff"
    head = client.head(path_of(url))
    assert head.status_code == 200 and head.content == b""
    assert client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).json()[f"{kind}Url"] == url

    wrong = [url.replace(f"{kind}-", f"{kind}-0"), url.replace(".jpg", ".png"), url.replace(f"/{kind}-", "/other-"),
             url.replace(card["slug"], "no-such-card")]
    for bad in wrong:
        assert client.get(path_of(bad)).status_code == 404, bad

    second = put(client, user, card, images.png(colour=(200, 10, 200)), "image/png", kind).json()[f"{kind}Url"]
    assert second != url
    assert client.get(path_of(url)).status_code == 404  # the old image is no longer the card's
    assert served(client, second).convert("RGB").getpixel((10, 10))[1] < 60
    assert len(stored(settings)) == 1  # replaced, not added

    removed = client.delete(f"/v1/cards/{card['cardId']}/{kind}", headers=user["headers"])
    assert removed.status_code == 200 and removed.json()[f"{kind}Url"] is None
    assert removed.json() == client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).json()
    assert client.get(path_of(second)).status_code == 404 and stored(settings) == []
    assert client.delete(f"/v1/cards/{card['cardId']}/{kind}", headers=user["headers"]).status_code == 200


def test_the_card_page_shows_the_photo(client, user):
    card = create_card(client, user["headers"])
    assert "class=\"photo\"" not in client.get(f"/p/{card['slug']}").text
    url = put(client, user, card, images.jpeg(), "image/jpeg").json()["photoUrl"]
    assert f'src="{path_of(url)}"' in client.get(f"/p/{card['slug']}").text


def test_images_are_answered_from_memory_after_the_first_read(client, user):
    card = create_card(client, user["headers"])
    url = path_of(put(client, user, card, images.jpeg(), "image/jpeg").json()["photoUrl"])
    client.get(url)
    hits = metric(client, "cache_hits_total", cache="image")
    misses = metric(client, "cache_misses_total", cache="image")
    for _ in range(3):
        assert client.get(url).status_code == 200
    assert metric(client, "cache_hits_total", cache="image") == hits + 3
    assert metric(client, "cache_misses_total", cache="image") == misses


def test_only_the_owner_sets_or_removes_images(client, user, settings):
    card = create_card(client, user["headers"])
    stranger = register(client)
    assert_problem(put(client, stranger, card, images.jpeg(), "image/jpeg"), 404)
    assert_problem(client.delete(f"/v1/cards/{card['cardId']}/photo", headers=stranger["headers"]), 404)
    assert_problem(client.put(f"/v1/cards/{card['cardId']}/photo", content=images.jpeg(),
                              headers={"Content-Type": "image/jpeg"}), 401)
    assert stored(settings) == []


def test_images_die_with_their_card_and_account(client, user, settings):
    card = create_card(client, user["headers"])
    put(client, user, card, images.jpeg(), "image/jpeg")
    put(client, user, card, images.png(), "image/png", "logo")
    assert len(stored(settings)) == 2
    assert client.delete(f"/v1/cards/{card['cardId']}", headers=user["headers"]).status_code == 204
    assert stored(settings) == []
    member = register(client)  # not the first account, which is the only admin and stays
    other = create_card(client, member["headers"])
    put(client, member, other, images.jpeg(), "image/jpeg")
    assert len(stored(settings)) == 1
    assert client.delete("/v1/me", headers=member["headers"]).status_code == 204
    assert stored(settings) == []


def test_photo_jpeg_gives_the_stored_photo(client, user, settings):
    card = create_card(client, user["headers"])
    db = client.app.state.db

    async def photo():
        async with db.read() as conn:
            found = await get_card_by_slug(conn, card["slug"])
        return await card_images.photo_jpeg(db, found)

    assert client.blocking_portal.call(photo) is None
    put(client, user, card, images.jpeg(), "image/jpeg")
    jpeg = client.blocking_portal.call(photo)
    assert jpeg == stored(settings)[0][3] and Image.open(io.BytesIO(jpeg)).size == (512, 512)


# --- at an edge ------------------------------------------------------------------------


def test_an_edge_answers_images_from_its_copy(client, user, settings):
    """The edge's answer path (EdgeCards.load_image through answers.answer_image), its copy
    here the primary's own file: the image is read from the copy once, then from memory;
    what the copy cannot say goes to the primary."""
    card = create_card(client, user["headers"], slug="edge-photo-card")
    url = path_of(put(client, user, card, images.jpeg(), "image/jpeg").json()["photoUrl"])
    copy = local_copy.EdgeCopy(settings)
    public = answers.Public(settings, copy.cards, Counters(None), qr.QrCache(), ScannerLimit(1000))  # type: ignore[arg-type]
    visit = answers.Visit("GET", "192.0.2.1")
    file = url.rpartition("/")[2]

    def answer(name: str = file):
        return asyncio.run(answers.answer_image(public, "edge-photo-card", name, visit))

    with pytest.raises(local_copy.AskPrimary):  # no copy yet
        answer()
    copy.path = settings.database_path
    first = answer()
    assert first.status == 200 and first.body == client.get(url).content
    assert (b"cache-control", b"public, max-age=31536000, immutable") in first.headers
    copy.path = settings.data_dir / "removed-meanwhile.db"  # from memory now: the copy is not read
    assert answer() is first
    with pytest.raises(local_copy.AskPrimary):  # the thumbnail is not in memory yet: the copy must say
        answer(file.replace(".jpg", "-96.jpg"))
    copy.path = settings.database_path
    assert answer(file.replace("photo-", "photo-0")).status == 404
    found = copy.cards.cached("edge-photo-card")
    assert isinstance(found, Card) and found.photo_hash in url


# --- the console -------------------------------------------------------------------------


def test_the_console_uploads_shows_and_removes_a_photo(client, user, settings):
    card = create_card(client, user["headers"])
    log_in(client, user["email"] if "email" in user else client.get("/v1/me", headers=user["headers"]).json()["email"])
    edit = f"/app/cards/{card['cardId']}/edit"
    token = csrf_of(client.get(edit).text)
    response = client.post(f"/app/cards/{card['cardId']}/photo", data={"_csrf_token": token},
                           files={"image": ("me.jpg", images.jpeg_with_gps(), "image/jpeg")}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == edit
    page = client.get(edit).text
    [(_, _, content_hash, _, _)] = stored(settings)
    thumbnail = f"/p/{card['slug']}/photo-{content_hash}-96.jpg"
    assert f'src="{thumbnail}"' in page and "Photo saved." in page
    assert client.get(thumbnail).status_code == 200
    assert 'type="file"' in page and 'enctype="multipart/form-data"' in page

    response = client.post(f"/app/cards/{card['cardId']}/photo/delete", data={"_csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303 and stored(settings) == []
    assert thumbnail not in client.get(edit).text


@pytest.mark.parametrize(("name", "body", "said"), [
    ("svg", images.SVG, "Choose a JPEG, PNG or WebP picture"),
    ("truncated", images.truncated_jpeg(), "could not be read"),
    ("bomb", images.png_bomb(20_000, 20_000), "too many pixels"),
    ("too large", b"\xff\xd8\xff" + b"\0" * (10 * 1024 * 1024 + 100_000), "larger than 10 MB"),
    ("nothing chosen", b"", "Choose a picture"),
])
def test_the_console_says_why_an_upload_is_refused(client, user, settings, name, body, said):
    card = create_card(client, user["headers"])
    log_in(client, client.get("/v1/me", headers=user["headers"]).json()["email"])
    token = csrf_of(client.get(f"/app/cards/{card['cardId']}/edit").text)
    response = client.post(f"/app/cards/{card['cardId']}/logo", data={"_csrf_token": token},
                           files={"image": ("upload", body, "image/png")}, follow_redirects=False)
    assert response.status_code == 422, response.text[:500]
    assert said in response.text and 'id="logo-error"' in response.text
    assert stored(settings) == []
