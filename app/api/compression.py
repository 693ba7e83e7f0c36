"""gzip for the text answers every app here (primary or edge) makes: JSON, HTML, SVG, CSS and
JS of 1 KB and more, when the client accepts gzip (SPEC §11 "Compression").

Litestar's CompressionMiddleware (CompressionConfig) is not used, as it cannot meet the spec:
it compresses every answer whatever its type (PNG, JPEG and PDF gain nothing and cost CPU),
compresses a streaming answer chunk by chunk through a gzip stream that holds what it is
given (the event stream's events would wait in the compressor), treats `gzip;q=0` as
accepting gzip, and says `Vary: Accept-Encoding` only on the answers it compressed, so a
shared cache could hand the identity answer it stored to everyone.

Here the answer's type is read from its head: any other type, an answer already encoded, a
streaming answer (its first body part says more follows: the event streams, file downloads)
and one under MINIMUM_SIZE go out untouched, the head sent as soon as that is known.

What the scanner door answers from memory before the app (app/public/fast_path.py: the
short links, the public codes and the card page, FROM_MEMORY) goes out uncompressed from
the app too, so a phone gets the same answer whichever door answered it (the live
tests compare them). Compressing those would mean a gzip copy kept beside each answer
and a header read on the fast path: not done yet.
"""

from __future__ import annotations

import zlib

from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send

MINIMUM_SIZE = 1024
# zlib's default: most of level 9's gain on text at a fraction of its time.
LEVEL = 6
COMPRESSIBLE = frozenset({
    "application/json", "application/problem+json", "application/vnd.oai.openapi+json", "text/html", "image/svg+xml",
    "text/css", "text/javascript", "application/javascript",
})
NO_BODY = frozenset({204, 304})
FROM_MEMORY = ("/c/", "/q/", "/p/")


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value takes gzip: named (or `*`) with a q above 0."""
    named: float | None = None
    star: float | None = None
    for part in accept_encoding.split(","):
        coding, *params = (piece.strip() for piece in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        coding = coding.lower()
        if coding in ("gzip", "x-gzip"):
            named = q if named is None else max(named, q)
        elif coding == "*":
            star = q
    chosen = named if named is not None else star
    return chosen is not None and chosen > 0


def compressible(media_type: str) -> bool:
    return media_type.partition(";")[0].strip().lower() in COMPRESSIBLE


def gzip_bytes(body: bytes) -> bytes:
    """The body as a gzip member (no file name, time 0: the same body always gives the same bytes)."""
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(body) + compressor.flush()


def compress(app: ASGIApp) -> ASGIApp:
    """Wrap an ASGI app: its JSON, HTML, SVG, CSS and JS answers of MINIMUM_SIZE and more are
    gzip-encoded for a client that accepts it, and say `Vary: Accept-Encoding` to every client."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(FROM_MEMORY):
            await app(scope, receive, send)
            return
        wanted = accepts_gzip(next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept-encoding"), ""))
        start: Message | None = None  # held until the first body part says whether to compress
        passing = False

        async def send_maybe_compressed(message: Message) -> None:
            nonlocal start, passing
            if passing:
                await send(message)
                return
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders(message)
                if (message["status"] in NO_BODY or "content-encoding" in headers
                        or not compressible(headers.get("content-type", ""))):
                    passing = True
                    await send(message)
                else:
                    start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            passing = True  # whatever happens below, the head goes now
            body = message.get("body", b"")
            headers = MutableScopeHeaders(start)
            if scope["method"] == "HEAD":  # a handler's own HEAD answer: the GET's head, no body
                if int(headers.get("content-length") or 0) >= MINIMUM_SIZE:
                    headers.extend_header_value("vary", "Accept-Encoding")
                    if wanted:  # as the GET would be; its compressed length is not known without the body
                        headers["Content-Encoding"] = "gzip"
                        del headers["Content-Length"]
                await send(start)
                await send(message)
                return
            if message.get("more_body", False) or len(body) < MINIMUM_SIZE:
                await send(start)
                await send(message)
                return
            headers.extend_header_value("vary", "Accept-Encoding")
            if wanted:
                body = gzip_bytes(body)
                headers["Content-Encoding"] = "gzip"
                headers["Content-Length"] = str(len(body))
                message = {**message, "body": body}
            await send(start)
            await send(message)

        await app(scope, receive, send_maybe_compressed)

    return handle
