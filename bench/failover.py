"""Failover drill (SPEC §11, "Failover by one command"), several rounds: RTO and RPO.

    .venv/bin/python bench/failover.py [--rounds 3]

Each round (tests/support/failover.py's drill, the one tests/live/test_failover.py runs
once): a primary and two edges (`qrcontact serve`, real Litestream) share a replica on
moto_server as S3; cards are written at the primary one after another and a phone scans
a card at the second edge; the primary's process group gets SIGKILL and its data folder
is deleted; `qrcontact promote` runs on the first edge. Measured:

* RTO: from the kill to the first card created at the promoted edge (it restores the old
  primary's replica, restarts itself as the primary and replicates to epoch 1's path);
* RPO: how long before the kill the oldest acknowledged card missing at the new primary
  was acknowledged (0 when none is missing); the drill fails past 1 s;
* the second edge's scans: every one answered (302), none counted twice at the new
  primary, and how many were lost with the old one (shipped to it in its last second);
* the old primary, started again on a fresh disk, serves as an edge of the new one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import moto_server  # noqa: E402

from tests.support.failover import drill  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rtos, rpos = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with moto_server(root / "moto.log") as endpoint:
            for n in range(args.rounds):
                figures = drill(root / f"round{n}", endpoint, f"failover{n}")
                rtos.append(figures.rto)
                rpos.append(figures.rpo)
                print(f"round {n + 1}: RTO {figures.rto:.1f} s, RPO {figures.rpo:.2f} s "
                      f"({figures.lost} of {figures.written} cards lost), {figures.scans} scans at the second edge, "
                      f"{len(figures.failed_scans)} failed, {figures.scans_lost} lost with the old primary; "
                      f"the old primary came back as: {figures.old_primary_role}", flush=True)
    print(f"RTO median {statistics.median(rtos):.1f} s, max {max(rtos):.1f} s; "
          f"RPO median {statistics.median(rpos):.2f} s, max {max(rpos):.2f} s ({args.rounds} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
