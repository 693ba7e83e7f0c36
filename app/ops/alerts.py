"""`system.alert` events (SPEC §9): the conditions of the alert rules in
monitoring/alerts.yml, watched in process, so that an integrator hears of them over the
event API and webhooks as the operator's Prometheus does.

An alert is recorded once per episode: when its condition starts to hold (not on every
check while it holds), and again only after it has stopped holding in between. The
episodes are remembered in memory: a restart in the middle of one records it once more.
The events are nobody's in particular (user_id None): admins see them.

Watched: replication lag past its threshold (the QRContactReplicationLag rule), a failed
backup verification (QRContactBackupVerifyFailed; reported by app/ops/backups.py),
the database's disk nearly full (at 90 %; QRContactDataVolumeFull warns at 80 %), and the
7-day k-factor below its alert threshold for a day (QRContactLowKFactor; read hourly).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from typing import Literal

from app.db import Database
from app.ops.replication import LagMonitor
from app.sharing import kfactor

log = logging.getLogger("app.alerts")

Severity = Literal["page", "warning"]
# The thresholds of monitoring/alerts.yml (keep them alike).
LAG_THRESHOLD_SECONDS = 60.0  # QRContactReplicationLag
K_FACTOR_THRESHOLD = 0.8  # QRContactLowKFactor, over 7 days
K_FACTOR_HOLD_SECONDS = 24 * 3600.0  # its `for: 24h`
K_FACTOR_EVERY_SECONDS = 3600.0  # a query over users and invitations: hourly is plenty
DISK_FULL_RATIO = 0.9  # the database's file system this full is "nearly full"
CHECK_EVERY_SECONDS = 15.0


class Alerts:
    """The alerts in progress, and the one operation that records a `system.alert`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.active: set[str] = set()

    async def observe(self, alert: str, holds: bool, message: str, severity: Severity) -> bool:
        """Note whether `alert`'s condition holds now; record its event when it starts to.
        Returns whether an event was recorded. Raises sqlite3.Error (the episode is then not
        counted as started, so the next check tries again)."""
        if not holds:
            self.active.discard(alert)
            return False
        if alert in self.active:
            return False
        async with self.db.write() as tx:
            await tx.emit("system.alert", {"alert": alert, "message": message, "severity": severity})
        self.active.add(alert)
        log.warning("alert %s: %s", alert, message)
        return True


class AlertWatch:
    """Checks the conditions every CHECK_EVERY_SECONDS (the k-factor hourly)."""

    def __init__(
        self, alerts: Alerts, monitor: LagMonitor | None, *,
        disk_usage: Callable[[], tuple[int, int]] | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.alerts = alerts
        self.monitor = monitor
        db = alerts.db
        self.disk_usage = disk_usage or (lambda: _usage(db))
        self.clock = clock
        self._k_checked: float | None = None
        self._k_low_since: float | None = None

    async def check(self) -> None:
        """Look at every condition once."""
        alerts = self.alerts
        lag = self.monitor.lag() if self.monitor is not None else None
        await alerts.observe(
            "replication_lag", lag is not None and lag > LAG_THRESHOLD_SECONDS,
            f"the replica is {lag or 0:.0f} s behind the database (threshold {LAG_THRESHOLD_SECONDS:.0f} s)", "page",
        )
        used, total = await asyncio.to_thread(self.disk_usage)
        ratio = used / total if total else 0.0
        await alerts.observe(
            "disk_nearly_full", ratio >= DISK_FULL_RATIO,
            f"the database's disk is {ratio:.0%} full (alert from {DISK_FULL_RATIO:.0%})", "page",
        )
        now = self.clock()
        if self._k_checked is None or now - self._k_checked >= K_FACTOR_EVERY_SECONDS:
            self._k_checked = now
            await self.check_k_factor(now)

    async def check_k_factor(self, now: float) -> None:
        report = await kfactor.report(self.alerts.db, "7d")
        low = report.k_factor is not None and report.k_factor < K_FACTOR_THRESHOLD
        if not low:
            self._k_low_since = None
        elif self._k_low_since is None:
            self._k_low_since = now
        held = self._k_low_since is not None and now - self._k_low_since >= K_FACTOR_HOLD_SECONDS
        await self.alerts.observe(
            "k_factor_low", held,
            f"the 7-day k-factor has been below {K_FACTOR_THRESHOLD} for a day ({report.k_factor or 0:.2f})", "warning",
        )

    async def run(self, interval: float = CHECK_EVERY_SECONDS) -> None:
        """Check every `interval` seconds until cancelled; a failed check is logged and tried again."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check()
            except Exception:
                log.exception("checking the alert conditions failed; will retry")


def _usage(db: Database) -> tuple[int, int]:
    usage = shutil.disk_usage(db.path.parent)
    return usage.used, usage.total
