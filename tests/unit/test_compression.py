"""gzip for text answers of 1 KB and more (app/api/compression.py, SPEC §11 "Compression"):
the wrapper's table of types × sizes × Accept-Encoding on a one-handler app, then the real
app's documents, pages, files, images and event stream. The live stream read through it:
tests/live/test_event_stream.py (httpx asks for gzip on every request)."""

from __future__ import annotations

import gzip

import pytest
from litestar import Litestar, Request, Response, get
from litestar.testing import TestClient

from app.api.compression import MINIMUM_SIZE, accepts_gzip, compress
from app.static_files import static_url
from tests.support.app import create_card

TEXT = ["application/json", "application/problem+json", "text/html; charset=utf-8", "image/svg+xml", "text/css",
        "text/javascript; charset=utf-8", "application/javascript"]
OTHER = ["image/png", "image/jpeg", "application/pdf", "text/vcard", "text/csv; charset=utf-8", "text/event-stream"]
SIZES = [0, MINIMUM_SIZE - 1, MINIMUM_SIZE, 50_000]


@get("/answer")
async def answer(request: Request) -> Response:
    query = request.query_params
    headers = {"Content-Encoding": "br"} if query.get("encoded") else {}
    return Response(b"a" * int(query["size"]), media_type=query["media_type"], headers=headers)


@pytest.fixture(scope="module")
def small_app():
    app = Litestar([answer], logging_config=None)  # as the service: logging is the command line's
    app.asgi_handler = compress(app.asgi_handler)
    with TestClient(app) as client:
        yield client


def raw(client: TestClient, url: str, accept: str, **params) -> tuple[dict, bytes]:
    """The answer's head and its bytes as sent (httpx would decode them)."""
    with client.stream("GET", url, params=params, headers={"Accept-Encoding": accept}) as response:
        return response.headers, b"".join(response.iter_raw())


@pytest.mark.parametrize("media_type", TEXT + OTHER)
@pytest.mark.parametrize("size", SIZES)
def test_text_of_1_kb_and_more_is_gzipped_for_a_client_that_asks(small_app, media_type, size):
    big_text = media_type in TEXT and size >= MINIMUM_SIZE
    body = b"a" * size
    for accept, gzipped in [("gzip, deflate, br", big_text), ("identity", False), ("", False)]:
        headers, sent = raw(small_app, "/answer", accept, media_type=media_type, size=size)
        assert (headers.get("content-encoding"), headers.get("vary")) == (
            "gzip" if gzipped else None, "Accept-Encoding" if big_text else None), accept
        assert (gzip.decompress(sent) if gzipped else sent) == body
        assert int(headers["content-length"]) == len(sent)


def test_an_answer_already_encoded_is_left_alone(small_app):
    headers, sent = raw(small_app, "/answer", "gzip", media_type="application/json", size=5000, encoded=True)
    assert headers["content-encoding"] == "br" and sent == b"a" * 5000


@pytest.mark.parametrize(("value", "accepted"), [
    ("gzip", True), ("GZIP", True), ("deflate, gzip;q=0.5", True), ("x-gzip", True), ("*", True), ("br, *;q=0.1", True),
    ("", False), ("identity", False), ("br, deflate", False), ("gzip;q=0", False), ("gzip;q=0.0, *", False),
    ("*;q=0", False), ("gzip;q=nonsense", False),
])
def test_accept_encoding_is_read_with_its_q_values(value, accepted):
    assert accepts_gzip(value) is accepted


def test_the_apps_documents_pages_and_files_are_gzipped_and_images_are_not(client, user):
    card = create_card(client, user["headers"], slug="gzip-card")
    gzipped = [
        ("/schema/openapi.json", {}),
        ("/v1/cards", user["headers"]),
        (f"/v1/cards/{card['cardId']}", user["headers"]),
        (static_url("console.css"), {}),
        (static_url("console.js"), {}),
        (f"/v1/cards/{card['cardId']}/qr?format=svg", user["headers"]),
    ]
    for path, headers in gzipped:
        got = client.get(path, headers={**headers, "Accept-Encoding": "gzip"})
        assert (path, got.status_code, got.headers.get("content-encoding"), got.headers.get("vary")) == (
            path, 200, "gzip", "Accept-Encoding")
        head = client.head(path, headers={**headers, "Accept-Encoding": "gzip"})
        assert (path, head.headers.get("content-encoding")) == (path, "gzip")
    # What the scanner door answers from memory is answered alike by the app: uncompressed.
    from_memory = [("/p/gzip-card", {}), ("/q/gzip-card.svg", {})]
    for path, headers in [(f"/v1/cards/{card['cardId']}/qr?format=png", user["headers"]), ("/health", {}), *from_memory]:
        got = client.get(path, headers={**headers, "Accept-Encoding": "gzip"})
        assert (path, got.status_code, got.headers.get("content-encoding")) == (path, 200, None)
    stream = client.head("/v1/events/stream", headers={**user["headers"], "Accept-Encoding": "gzip"})
    assert stream.headers["content-type"].startswith("text/event-stream") and "content-encoding" not in stream.headers
