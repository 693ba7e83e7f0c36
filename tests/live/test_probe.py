"""`qrcontact probe`, the deploy smoke test, run as an operator would against a live
`qrcontact serve`: all checks pass on a healthy service with a card, and each failure
exits 1 naming its reason. The card's checks are HEADs: they count nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.net import free_port
from tests.support.service import sign_up

QRCONTACT = str(Path(sys.executable).parent / "qrcontact")


def _probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([QRCONTACT, "probe", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def live(service):
    svc = service(REPLICA_URL="off")
    headers = sign_up(svc)
    card = httpx.post(f"{svc.url}/v1/cards", json={"fullName": "Jane Doe", "email": "jane@example.com", "slug": "jane-doe"},
                      headers=headers)
    assert card.status_code == 201, card.text
    return svc, headers


def test_a_healthy_service_passes_every_check_and_nothing_is_counted(live):
    svc, headers = live
    result = _probe(svc.url, "--slug", "jane-doe")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [
        "ok   health", "ok   short link", "ok   card page", "ok   vCard", "ok   API docs", "ok   OpenAPI document",
    ]
    assert lines[-1] == "all checks passed"
    # A HEAD: the service answered the short link without counting it.
    metrics = httpx.get(f"{svc.url}/metrics").text.splitlines()
    assert 'redirects_total{outcome="not_counted"} 1.0' in metrics
    assert not any(line.startswith('redirects_total{outcome="counted"}') and not line.endswith(" 0.0") for line in metrics)


def test_an_unknown_card_fails_with_its_reason(live):
    svc, _ = live
    result = _probe(svc.url, "--slug", "no-such-card")
    assert result.returncode == 1
    assert "FAIL short link: HEAD /c/no-such-card" in result.stdout and "expected a 302" in result.stdout
    assert "FAIL card page" in result.stdout and "answered 404" in result.stdout
    assert result.stdout.splitlines()[-1] == "failed: short link, card page, vCard"


def test_nothing_listening_fails_every_check():
    result = _probe(f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stdout.count("FAIL") == 3 and "ConnectError" in result.stdout
