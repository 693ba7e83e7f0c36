"""Metrics on the scanner paths, kept as plain numbers and folded into prometheus-client
before each scrape (`fold_all`, called by /metrics).

Recording straight into prometheus-client costs about a microsecond per counter and two
per histogram (a lock and several calls each, a bucket walk): on a redirect that records
several of them, a large part of the whole answer. A tally is an attribute increment, and
/metrics reads exactly what it would have read otherwise, because every tally is folded
in first. Only code on the event loop touches a tally, so no lock is needed.
"""

from __future__ import annotations

import bisect
import weakref
from typing import Any

_LIVE: weakref.WeakSet[Counted | Timed] = weakref.WeakSet()


class Counted:
    """A counter child's increments since the last fold: `tally.n += 1`."""

    __slots__ = ("child", "n", "__weakref__")

    def __init__(self, child: Any) -> None:
        self.child, self.n = child, 0
        _LIVE.add(self)

    def fold(self) -> None:
        if self.n:
            n, self.n = self.n, 0
            self.child.inc(n)


class Timed:
    """A histogram child's observations since the last fold: `tally.add(seconds)`; with a
    `counter` child, the same events are counted there too (requests beside their durations)."""

    __slots__ = ("child", "counter", "bounds", "n", "total", "buckets", "__weakref__")

    def __init__(self, child: Any, counter: Any = None) -> None:
        self.child, self.counter = child, counter
        # The histogram's upper bounds, +Inf last; prometheus-client fills the first bucket
        # whose bound is >= the value, which is the one bisect_left finds.
        self.bounds: list[float] = list(child._upper_bounds)
        self.n, self.total, self.buckets = 0, 0.0, [0] * len(self.bounds)
        _LIVE.add(self)

    def add(self, seconds: float) -> None:
        self.n += 1
        self.total += seconds
        self.buckets[bisect.bisect_left(self.bounds, seconds)] += 1

    def fold(self) -> None:
        if not self.n:
            return
        n, total, buckets = self.n, self.total, self.buckets
        self.n, self.total, self.buckets = 0, 0.0, [0] * len(self.bounds)
        if self.counter is not None:
            self.counter.inc(n)
        # prometheus-client has no public call that adds many observations at once; these
        # are the values Histogram.observe() adds to (tests/unit/test_scanner.py checks that the
        # samples come out as if observed one by one).
        self.child._sum.inc(total)
        for i, count in enumerate(buckets):
            if count:
                self.child._buckets[i].inc(count)


def fold_all() -> None:
    """Add every tally into its metric; /metrics calls this before it reads them."""
    for tally in list(_LIVE):
        tally.fold()
