"""How long an edge still serves a card after the primary acknowledged its deletion.

One primary and one edge (`qrcontact serve`, as bench/edges.py starts them: pinned to one
core, a replica on moto_server as S3) on 127.0.0.1. Each trial creates a card, waits until
the edge answers it from its own copy, deletes it at the primary, and from the moment the
DELETE is acknowledged asks the edge (HEAD /c/{slug}: answered, never counted) as fast as
one client can until it stops answering 302. The window is that time; a trial whose first
request after the acknowledgement was already answered 410 had none. With --link-ms the
edge reaches the primary's internal port through bench/edges.py's delaying link.

    .venv/bin/python bench/edge_deletes.py [--trials 40] [--link-ms 0]
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_port, moto_server, s3_client, s3_url  # noqa: E402
from edges import DelayLink, Server, percentile, wait_for  # noqa: E402
from scanners import PASSWORD, stop  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40, help="cards deleted (40)")
    parser.add_argument("--link-ms", type=float, default=0, help="round trip from the edge to the primary's internal port (0)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-edge-deletes-"))
    with moto_server(root / "moto.log") as endpoint:
        s3_client(endpoint).create_bucket(Bucket="deletes")
        token, internal = secrets.token_urlsafe(32), free_port()
        replica = s3_url(endpoint, "deletes", "db")
        primary = Server(root, "primary", {"ROLE": "primary", "EDGE_TOKEN": token, "INTERNAL_PORT": str(internal),
                                           "REPLICA_URL": replica})
        edge = None
        try:
            primary.wait_healthy()
            auth = primary.http.post("/v1/auth/register", json={"email": "bench@example.com", "password": PASSWORD,
                                                                 "marketingConsent": False})
            auth.raise_for_status()
            headers = {"Authorization": f"Bearer {auth.json()['accessToken']}"}
            internal_url = DelayLink(args.link_ms / 2000).to(internal) if args.link_ms else f"http://127.0.0.1:{internal}"
            edge = Server(root, "edge", {"ROLE": "edge", "PRIMARY_URL": primary.url, "PRIMARY_INTERNAL_URL": internal_url,
                                         "EDGE_TOKEN": token, "PUBLIC_BASE_URL": primary.url, "REPLICA_URL": replica})
            edge.wait_healthy()
            windows, stale_first = [], 0
            with httpx.Client(base_url=edge.url) as scanner:
                for trial in range(args.trials):
                    slug = f"gone-{trial}"
                    card = primary.http.post("/v1/cards", json={"fullName": "Gone", "email": "g@example.com", "slug": slug},
                                             headers=headers)
                    card.raise_for_status()
                    wait_for(lambda slug=slug: (r := scanner.head(f"/c/{slug}")).status_code == 302 and "via" not in r.headers,
                             every=0.02)
                    primary.http.delete(f"/v1/cards/{card.json()['cardId']}", headers=headers).raise_for_status()
                    acknowledged = time.perf_counter()
                    first = True
                    while (answer := scanner.head(f"/c/{slug}")).status_code == 302:
                        stale_first += first
                        first = False
                    assert answer.status_code == 410, answer.status_code
                    windows.append(0.0 if first else time.perf_counter() - acknowledged)
            print(f"{args.trials} deletions, link {args.link_ms:.0f} ms: the edge answered 302 after the acknowledgement "
                  f"in {stale_first} trials; window p50 {percentile(windows, 0.5) * 1000:.1f} ms, "
                  f"p99 {percentile(windows, 0.99) * 1000:.1f} ms, max {max(windows) * 1000:.1f} ms")
            print(json.dumps({"trials": args.trials, "link_ms": args.link_ms, "stale_after_ack": stale_first,
                              "window_p50_ms": round(percentile(windows, 0.5) * 1000, 2),
                              "window_max_ms": round(max(windows) * 1000, 2)}))
            return 0
        finally:
            for server in (edge, primary):
                if server is not None:
                    stop(server.process)


if __name__ == "__main__":
    sys.exit(main())
