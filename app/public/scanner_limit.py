"""The public pages' per-client limit (SCANNER_RATE_LIMIT_PER_MINUTE), apart from the API's."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class ScannerLimit:
    """At most `per_minute` requests per client on the public pages: a token bucket per
    client that holds `per_minute` tokens and refills at `per_minute` a minute.

    Litestar's rate-limit middleware keeps each client's history in a store and
    serializes it on every request, which would cost more than the whole redirect; a
    bucket is two floats in a dict. Buckets that would be full again are dropped once a
    minute, so memory follows the clients of the last minute.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # client -> [tokens, last update]
        self._pruned = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    def retry_after(self, client: str) -> int:
        """0 when the request may go ahead (and take a token), else the seconds until it may."""
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            if now - self._pruned > 60:
                self._prune(now)
            self._buckets[client] = [self.capacity - 1, now]
            return 0
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self.capacity:
            tokens = self.capacity
        bucket[1] = now
        if tokens >= 1:
            bucket[0] = tokens - 1
            return 0
        bucket[0] = tokens
        return max(1, math.ceil((1 - tokens) / self.rate))

    def _prune(self, now: float) -> None:
        full_after = self.capacity / self.rate
        self._buckets = {c: b for c, b in self._buckets.items() if now - b[1] < full_after}
        self._pruned = now
