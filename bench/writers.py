"""Many writers at once against `qrcontact serve`: latency, 5xx and lock errors.

    .venv/bin/python bench/writers.py [--writers 50] [--writes 20] [--replica off]

Each writer is its own account, writing cards (and every third request its account
settings) as fast as it can; all start together. The baseline is one writer doing the
same number of writes each, measured in the same run, so the figures compare on any
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.load import LOAD_ENV, concurrent_writes  # noqa: E402
from tests.support.service import Service  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(writers: int, writes: int, replica: str | None) -> dict:
    tmp = Path(tempfile.mkdtemp())
    env = dict(LOAD_ENV, **({"REPLICA_URL": replica} if replica else {}))
    svc = Service(tmp / "data", **env).start()
    try:
        results = asyncio.run(concurrent_writes(svc.url, writers, writes))
    finally:
        svc.stop()
        log = svc.log.read_text()
        shutil.rmtree(tmp, ignore_errors=True)
    latencies = [seconds * 1000 for _, seconds, _ in results]
    return {
        "requests": len(results),
        "5xx": sum(status >= 500 for status, _, _ in results),
        "other": sorted({status for status, _, _ in results} - {200, 201}),
        "locked": log.count("database is locked"),
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--writes", type=int, default=20, help="writes per writer")
    parser.add_argument("--replica", default=None, help="REPLICA_URL (default: Litestream to a local folder)")
    args = parser.parse_args()
    baseline = run(1, args.writes, args.replica)
    loaded = run(args.writers, args.writes, args.replica)
    for name, figures in (("1 writer (baseline)", baseline), (f"{args.writers} writers", loaded)):
        print(
            f"{name:22} {figures['requests']:5} writes  5xx {figures['5xx']}  'database is locked' {figures['locked']}  "
            f"other statuses {figures['other'] or 'none'}  p50 {figures['p50']:.1f} ms  p99 {figures['p99']:.1f} ms"
        )
    print(
        f"\n{args.writers} writers vs 1: p50 x{loaded['p50'] / baseline['p50']:.1f}, p99 x{loaded['p99'] / baseline['p99']:.1f} "
        f"(throughput is shared: one writer connection, one CPU-bound process)"
    )
    return 1 if loaded["5xx"] or loaded["locked"] or baseline["5xx"] else 0


if __name__ == "__main__":
    sys.exit(main())
