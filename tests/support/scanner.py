"""Talking to the scanner fast path byte by byte: requests sent at once on one connection,
and an in-process app under a tight scanner limit."""

from __future__ import annotations

import re
import socket

from litestar.testing import TestClient

from app.main import create_app
from tests.support.app import make_settings


def exchange(live, requests: list[bytes]) -> list[bytes]:
    """Send the requests at once on one connection and read their responses (each with a
    Content-Length; none has a body for a HEAD), or as many as come before the server closes."""
    with socket.create_connection(live.address, timeout=5) as conn:
        conn.sendall(b"".join(requests))
        buffer, found = b"", []
        while len(found) < len(requests):
            head_end = buffer.find(b"\r\n\r\n")
            if head_end >= 0:
                length = int(re.search(rb"(?im)^content-length: *(\d+)", buffer[:head_end]).group(1))
                end = head_end + 4 + (0 if requests[len(found)].startswith(b"HEAD ") else length)
                if len(buffer) >= end:
                    found.append(buffer[:end])
                    buffer = buffer[end:]
                    continue
            chunk = conn.recv(65536)
            if not chunk:
                break
            buffer += chunk
        return found


def limited_client(tmp_path, **overrides) -> TestClient:
    return TestClient(create_app(make_settings(tmp_path, scanner_rate_limit_per_minute=3, **overrides)))


def scan_count(http, user, card) -> int:
    """The API's scanCount, which includes the counts not yet flushed."""
    return http.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).json()["scanCount"]
