"""`qrcontact serve` writes JSON log lines that carry request ids."""

from __future__ import annotations

import json
import signal

import httpx

from tests.support.service import Service


def test_serve_writes_json_log_lines_with_request_ids(tmp_path):
    svc = Service(tmp_path / "data", REPLICA_URL="off").start()
    try:
        assert httpx.get(f"{svc.url}/v1/me", headers={"X-Request-ID": "trace-me-1"}).status_code == 401
        assert httpx.get(f"{svc.url}/health").headers["x-request-id"]
    finally:
        assert svc.stop(signal.SIGTERM) == 0
    entries = [json.loads(line) for line in svc.log.read_text().splitlines() if line.strip()]
    access = [e for e in entries if e["logger"] == "app.access"]
    assert {"request_id": "trace-me-1", "method": "GET", "path": "/v1/me", "status": 401} .items() <= access[0].items()
    assert all("request_id" not in e for e in entries if e["logger"] == "uvicorn.error")
