"""Replication lag from commit to replica, for a folder replica and an S3 replica (moto).

Runs the real `qrcontact serve` under Litestream, creates cards through the API at
irregular intervals (so commits fall at every phase of Litestream's ticks), and for
each one measures the time from its 201 to the moment a new LTX file with a higher TXID
is on the replica. Prints median and max, and both as ratios to the 1 s bound
litestream.yml promises (monitor-interval 250 ms + sync-interval 500 ms + one upload).

    .venv/bin/python bench/replication_lag.py [--writes 40]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BIN, S3_CREDENTIALS, free_port, moto_server, s3_client, s3_url  # noqa: E402

LAG_BOUND = 1.0
LTX = re.compile(r"([0-9a-f]{16})-([0-9a-f]{16})\.ltx$")


def newest_txid_in_folder(folder: Path) -> int:
    level0 = folder / "ltx" / "0"
    names = os.listdir(level0) if level0.is_dir() else []
    return max((int(m.group(2), 16) for n in names if (m := LTX.search(n))), default=0)


def newest_txid_in_bucket(client, bucket: str, prefix: str) -> int:
    listing = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/0000/")
    keys = [o["Key"] for o in listing.get("Contents", [])]
    return max((int(m.group(2), 16) for k in keys if (m := LTX.search(k))), default=0)


def measure(replica_url: str, newest, data: Path, writes: int, env: dict[str, str]) -> list[float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ, **env, "DATA_DIR": str(data), "HOST": "127.0.0.1", "PORT": str(port),
        "PUBLIC_BASE_URL": url, "REPLICA_URL": replica_url, "RATE_LIMIT_PER_MINUTE": "100000",
    }
    process = subprocess.Popen(
        [str(BIN / "qrcontact"), "serve"], env=environment, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        auth = httpx.post(
            f"{url}/v1/auth/register", json={"email": "bench@example.com", "password": "bench password 123", "marketingConsent": False}
        ).json()
        headers = {"Authorization": f"Bearer {auth['accessToken']}"}
        time.sleep(2 * LAG_BOUND)
        lags = []
        rng = random.Random(7)
        for i in range(writes):
            before = newest()
            response = httpx.post(
                f"{url}/v1/cards", json={"fullName": "Bench", "email": "b@example.com", "slug": f"bench-{i}"}, headers=headers
            )
            acknowledged = time.monotonic()
            assert response.status_code == 201
            while newest() <= before:
                assert time.monotonic() - acknowledged < 30, "the replica never caught up"
                time.sleep(0.005)
            lags.append(time.monotonic() - acknowledged)
            time.sleep(rng.uniform(0.1, 1.3))
        return lags
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def report(name: str, lags: list[float]) -> None:
    median, worst = statistics.median(lags), max(lags)
    print(
        f"{name:>7}: n={len(lags)} median {median * 1000:.0f} ms, max {worst * 1000:.0f} ms "
        f"(median {median / LAG_BOUND:.2f}x, max {worst / LAG_BOUND:.2f}x the {LAG_BOUND:.0f} s bound)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        replica = root / "replica"
        report("folder", measure(f"file://{replica}", lambda: newest_txid_in_folder(replica), root / "a", args.writes, {}))
        with moto_server(root / "moto.log") as endpoint:
            client = s3_client(endpoint)
            client.create_bucket(Bucket="bench")
            lags = measure(
                s3_url(endpoint, "bench", "db"),
                lambda: newest_txid_in_bucket(client, "bench", "db"),
                root / "b",
                args.writes,
                S3_CREDENTIALS,
            )
            report("s3", lags)


if __name__ == "__main__":
    main()
