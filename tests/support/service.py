"""The `qrcontact` command as a user runs it: `qrcontact serve` in its own process group,
with real Litestream, stopped by PID; and an account made on it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.ops import replication
from tests.support.app import PASSWORD
from tests.support.net import free_port
from tests.support.waiting import wait_until

QRCONTACT = str(Path(sys.executable).parent / "qrcontact")


class Service:
    """`qrcontact serve` in its own process group, stopped by PID when the test ends."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ, "DATA_DIR": str(data_dir), "HOST": "127.0.0.1", "PORT": str(self.port),
            "PUBLIC_BASE_URL": self.url, **env,
        }
        self.log = data_dir.parent / f"serve-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self, umask: int = -1) -> Service:
        """Start it (with this umask, or the test's) and wait until /health answers 200."""
        self.process = subprocess.Popen(
            [QRCONTACT, "serve"], env=self.env, stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
            start_new_session=True, umask=umask,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise AssertionError(f"serve did not become healthy: {self.log.read_text()}")

    def litestream_env(self) -> dict[str, str]:
        """The environment `serve` gives Litestream (AWS_CA_BUNDLE removed, as app.replication does)."""
        env = {k: v for k, v in self.env.items() if k != "AWS_CA_BUNDLE"}
        env["QRCONTACT_DB_PATH"] = str(self.data_dir / "qrcontact.db")
        env["QRCONTACT_REPLICA_URL"] = self.env.get("REPLICA_URL") or f"file://{self.data_dir / 'replica'}"
        return env

    def local_txid(self) -> int:
        """Have the running Litestream cut the WAL now (its control socket) and return its TXID:
        every commit acknowledged before this call is at or below it."""
        command = [replication.binary(), "sync", "-socket", str(self.data_dir / "litestream.sock"), "-json",
                   str(self.data_dir / "qrcontact.db")]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return int(json.loads(result.stdout)["txid"])

    def replica_txid(self) -> int:
        """The newest TXID on the replica (0 when it is empty), listed by `litestream ltx`."""
        command = [replication.binary(), "ltx", "-config", str(replication.CONFIG), "-json",
                   str(self.data_dir / "qrcontact.db")]
        result = subprocess.run(command, env=self.litestream_env(), capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return max((int(f["max_txid"], 16) for f in json.loads(result.stdout or "[]") or []), default=0)

    def wait_until_replicated(self) -> int:
        """Wait until the replica holds every commit acknowledged so far (Litestream uploads
        on its own; only the WAL is cut now). Returns that TXID."""
        txid = self.local_txid()
        wait_until(lambda: self.replica_txid() >= txid, timeout=60, what=f"the replica to hold TXID {txid}", every=0.1)
        return txid

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if sig == signal.SIGKILL:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=30)
        finally:
            with_group_gone(self.process.pid)


def with_group_gone(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def sign_up(svc: Service, email: str = "owner@example.com") -> dict[str, str]:
    response = httpx.post(f"{svc.url}/v1/auth/register", json={"email": email, "password": PASSWORD, "marketingConsent": False})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}
