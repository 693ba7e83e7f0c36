"""What a login costs: argon2id hashing and verifying on this machine.

    .venv/bin/python bench/argon2_login.py [--rounds 50]

Prints the time of one hash (registration) and one verify (login) with the service's
parameters (OWASP: 19 MiB, 2 passes, 1 lane), and a whole login request next to a
request that hashes nothing (GET /v1/me), measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from litestar.testing import TestClient  # noqa: E402

from app.accounts.hashing import HASHER  # noqa: E402
from app.main import create_app  # noqa: E402
from tests.support.app import PASSWORD, make_settings  # noqa: E402


def timed(fn, rounds: int) -> float:
    """Median milliseconds of `fn` over `rounds` calls."""
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    stored = HASHER.hash(PASSWORD)
    hash_ms = timed(lambda: HASHER.hash(PASSWORD), args.rounds)
    verify_ms = timed(lambda: HASHER.verify(stored, PASSWORD), args.rounds)
    with tempfile.TemporaryDirectory() as tmp, TestClient(create_app(make_settings(Path(tmp)))) as client:
        auth = client.post("/v1/auth/register", json={"email": "b@example.com", "password": PASSWORD, "marketingConsent": False}).json()
        headers = {"Authorization": f"Bearer {auth['accessToken']}"}
        me_ms = timed(lambda: client.get("/v1/me", headers=headers), args.rounds)
        login_ms = timed(lambda: client.post("/v1/auth/login", json={"email": "b@example.com", "password": PASSWORD}), args.rounds)
    print(f"argon2id ({HASHER.memory_cost} KiB, t={HASHER.time_cost}, p={HASHER.parallelism}), median of {args.rounds}:")
    print(f"  hash (register)        {hash_ms:7.1f} ms")
    print(f"  verify (login)         {verify_ms:7.1f} ms")
    print(f"  POST /v1/auth/login    {login_ms:7.1f} ms   x{login_ms / me_ms:.0f} of GET /v1/me ({me_ms:.2f} ms, the baseline)")
    print(f"  one core verifies at most ~{1000 / verify_ms:.0f} logins a second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
