"""Polling with a deadline: a liveness bound, never a speed check."""

from __future__ import annotations

import time


def wait_until(condition, timeout: float = 60.0, what: str = "condition", every: float = 0.02):
    """Poll until `condition()` is truthy and return it (a liveness bound, not a speed check)."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)
    return result
