"""Soak: kill -9 `qrcontact serve` again and again under concurrent writes.

    .venv/bin/python bench/soak_sigkill.py --cycles 30 [--writers 6] [--seed N]

Each cycle starts the service on the same data folder (with Litestream, as in
production), lets writers create and delete cards, kills the whole process group at a
random moment, then checks PRAGMA integrity_check and that every acknowledged write is
in the file (and every acknowledged delete is not). Exits 1 on any loss.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_faults import Acknowledged, sigkill_cycle  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--writers", type=int, default=6)
    parser.add_argument("--seed", type=int, default=random.randrange(2**32))
    args = parser.parse_args()
    rng, acked, failures = random.Random(args.seed), Acknowledged(), 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        for cycle in range(args.cycles):
            seen = sigkill_cycle(data, cycle, acked, rng, writers=args.writers)
            bad = seen["integrity"] != "ok" or seen["lost"] or seen["resurrected"]
            failures += bool(bad)
            print(
                f"cycle {cycle + 1:3}/{args.cycles}: kill after {seen['moment']:.2f} s, "
                f"acknowledged so far {seen['acknowledged']:6}, lost {len(seen['lost'])}, "
                f"deletes undone {len(seen['resurrected'])}, integrity {seen['integrity']}",
                flush=True,
            )
    print(
        f"\nseed {args.seed}: {args.cycles} kill -9 cycles, {len(acked.created)} acknowledged creates, "
        f"{len(acked.deleted)} acknowledged deletes, cycles with a loss or a bad file: {failures} "
        f"({time.monotonic() - started:.0f} s)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
