"""The baseline for bench/scanners.py: the least an ASGI app can do to answer a redirect.

    python -m uvicorn bare:app --app-dir bench --loop uvloop --http httptools

No routing, no lookup, no metrics: a 302 with a Location header, under the same
uvicorn, event loop and HTTP parser as the service. What the service reaches as a
fraction of this, on the same core in the same run, is the figure that travels between
machines; absolute requests per second do not.
"""

from __future__ import annotations

START = {
    "type": "http.response.start",
    "status": 302,
    "headers": [(b"location", b"/p/bench"), (b"cache-control", b"no-store"), (b"content-length", b"0")],
}
BODY = {"type": "http.response.body", "body": b""}


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send(START)
    await send(BODY)
