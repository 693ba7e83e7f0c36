"""The primary's card change sequence on its internal port (GET /internal/changes), on a
real `qrcontact serve` process: bad values refused, long polls that cost the primary
nothing while they wait, and a poll woken by the commit of a change.
"""

from __future__ import annotations

import os
import secrets
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.app import metric
from tests.support.net import free_port
from tests.support.service import Service, sign_up
from tests.support.waiting import wait_until

TOKEN = secrets.token_urlsafe(32)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


class Primary:
    def __init__(self, service: Service, internal_url: str) -> None:
        self.service, self.internal_url = service, internal_url
        self.headers = sign_up(service, "changes@example.com")
        self.http = httpx.Client(base_url=service.url)
        # One client for every poll (a client each would cost the test more than the server).
        # Not kept alive: a connection idle past uvicorn's 5 s is closed under the next request.
        self.internal = httpx.Client(
            base_url=internal_url, headers=AUTH, timeout=40, limits=httpx.Limits(max_connections=None, max_keepalive_connections=0)
        )

    def changes(self, **params) -> httpx.Response:
        return self.internal.get("/internal/changes", params=params)

    def latest(self) -> int:
        return self.changes(after=0).json()["latest"]

    def cpu_seconds(self) -> float:
        """User and system time of the primary's process so far (all its threads)."""
        fields = Path(f"/proc/{self.service.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICK

    def polls_waiting(self) -> float:
        return metric(self.http, "internal_change_polls_waiting")


@pytest.fixture(scope="module")
def primary(tmp_path_factory) -> Iterator[Primary]:
    internal = free_port()
    service = Service(
        tmp_path_factory.mktemp("changes") / "data", REPLICA_URL="off", EDGE_TOKEN=TOKEN, INTERNAL_PORT=str(internal),
        RATE_LIMIT_PER_MINUTE="100000",
    ).start()
    try:
        primary = Primary(service, f"http://127.0.0.1:{internal}")
        yield primary
        primary.http.close()
        primary.internal.close()
    finally:
        service.stop()


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("wait not a number", {"wait": "nan"}),
        ("wait infinite", {"wait": "inf"}),
        ("wait negative", {"wait": "-1"}),
        ("wait past the longest", {"wait": "25.5"}),
        ("wait not a float", {"wait": "soon"}),
        ("after past SQLite's integers", {"after": str(2**63)}),
        ("after negative", {"after": "-1"}),
        ("after not an integer", {"after": "1.5"}),
    ],
)
def test_bad_values_are_refused_at_once(primary, name, params):
    started = time.monotonic()
    response = httpx.get(f"{primary.internal_url}/internal/changes", params=params, headers=AUTH, timeout=5)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert time.monotonic() - started < 2


def test_the_answer_names_the_history(primary):
    answer = primary.changes(after=0, wait=0).json()
    assert len(answer["history"]) == 32 and answer["history"] == primary.changes(after=0).json()["history"]


def test_a_caller_of_another_history_is_answered_at_once(primary):
    """An edge that heard of changes in another history (the primary was restored since)
    must start over; a long poll would keep it serving what the primary undid."""
    answer = primary.changes(after=0).json()
    for params in ({"history": "0" * 32}, {"history": answer["history"], "after": answer["latest"] + 5}):
        started = time.monotonic()
        again = primary.changes(**{"after": answer["latest"], "wait": 20, **params})
        assert again.status_code == 200 and again.json()["history"] == answer["history"]
        assert time.monotonic() - started < 2, params


def test_waiting_long_polls_cost_the_primary_nothing(primary):
    """300 edges' long polls used a whole core when each looked every 50 ms; asleep on the
    commit's signal, 100 of them waiting 3 s cost only their start and end."""
    polls, wait = 100, 3.0
    latest = primary.latest()
    answers: list[httpx.Response] = []

    def poll() -> None:
        answers.append(primary.changes(after=latest, wait=wait))

    before = primary.cpu_seconds()
    threads = [threading.Thread(target=poll) for _ in range(polls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    used = primary.cpu_seconds() - before
    assert [a.json()["changes"] for a in answers] == [[]] * polls
    assert used < 0.6, f"{polls} polls waiting {wait} s used {used:.2f} s of CPU"


def test_a_change_wakes_a_waiting_poll_when_it_commits(primary):
    """The poll's answer leaves the primary before the change's own acknowledgement does;
    looking every 50 ms it came 25 ms later on average."""
    delays = []
    for i in range(20):
        answered: list[float] = []

        def listen(after: int = primary.latest(), answered: list[float] = answered) -> None:
            primary.changes(after=after, wait=20)
            answered.append(time.perf_counter())

        poll = threading.Thread(target=listen)
        poll.start()
        wait_until(lambda: primary.polls_waiting() >= 1, timeout=10, what="the poll to wait")
        created = httpx.post(f"{primary.service.url}/v1/cards", json={"fullName": "Woken", "email": "w@example.com",
                             "slug": f"woken-{i}"}, headers=primary.headers)
        acknowledged = time.perf_counter()
        assert created.status_code == 201, created.text
        poll.join(30)
        delays.append(answered[0] - acknowledged)
    assert statistics.median(delays) < 0.01, f"median {statistics.median(delays) * 1000:.1f} ms after the acknowledgement"
