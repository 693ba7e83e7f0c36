"""Request bodies of any allowed size at the door (app/public/door.py's ScannerProtocol), on a
real uvicorn server with uvloop over real sockets: a handler reads a large body whole,
many large bodies at once leave the server answering, and a body refused early (413) is
answered to a client that writes all of it before reading, then the connection closed.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import socket

import httpx
import pytest
from litestar import Request, post

from tests.support.app import make_settings
from tests.support.live_server import LiveServer

LARGE = 10 * 1024 * 1024


@post("/test/digest", request_max_body_size=LARGE, status_code=200)
async def digest(request: Request) -> dict:
    body = await request.body()
    return {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@pytest.fixture
def live(tmp_path):
    server = LiveServer(make_settings(tmp_path), extra_handlers=[digest])
    yield server
    server.stop()


def test_the_server_runs_on_uvloop(live):
    assert type(live.loop).__module__.startswith("uvloop")


def test_a_5_mb_body_is_read_whole_by_a_handler(live):
    body = bytes(range(256)) * (5 * 1024 * 1024 // 256)
    answer = httpx.post(f"{live.url}/test/digest", content=body, timeout=30)
    assert answer.status_code == 200
    assert answer.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_many_large_bodies_at_once_are_all_read_and_the_server_answers_after(live):
    bodies = [bytes([i]) * 300_000 for i in range(40)]
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda body: httpx.post(f"{live.url}/test/digest", content=body, timeout=30), bodies))
    assert [a.json()["sha256"] for a in answers] == [hashlib.sha256(b).hexdigest() for b in bodies]
    assert httpx.get(f"{live.url}/health", timeout=5).status_code == 200


def test_a_large_body_on_a_keep_alive_connection_then_another_request(live):
    body = b"x" * 3_000_000
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for _ in range(3):
            assert client.post("/test/digest", content=body).json()["size"] == len(body)
        assert client.get("/health").status_code == 200


def test_a_body_over_the_limit_is_answered_413_to_a_client_that_writes_it_all_first(live):
    # httpx writes the whole body before it reads: the 413 must still reach it.
    answer = httpx.post(f"{live.url}/v1/auth/register", content=b"{" + b" " * 16_000_000, timeout=10,
                        headers={"content-type": "application/json"})
    assert answer.status_code == 413


def test_after_an_early_413_the_connection_is_closed(live):
    """The answer says the connection closes (a client that pools connections must not send
    another request on it), and the rest of the refused body is read and dropped, not taken
    for the next request."""
    head = b"POST /v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n\r\n"
    with socket.create_connection(live.address, timeout=10) as conn:
        conn.sendall(head + b" " * 100_000)
        received = conn.recv(65536)
        assert received.startswith(b"HTTP/1.1 413 ")
        assert b"\r\nconnection: close\r\n" in received.split(b"\r\n\r\n")[0].lower() + b"\r\n"
        conn.sendall(b" " * 100_000 + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        while chunk := conn.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.1 ") == 1
