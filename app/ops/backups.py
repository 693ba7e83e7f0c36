"""Backups: the service's own check that the replica can be restored, once per
BACKUP_VERIFY_INTERVAL, exported as metrics for the alerts in monitoring/alerts.yml.

The check is `qrcontact verify-backup` run in a thread: restore the replica to a temp
file and run `PRAGMA integrity_check` on it. How much history the replica keeps is
Litestream's business (litestream.yml, from BACKUP_RETENTION; see config.Settings).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from app.config import Settings
from app.ops import replication
from app.ops.alerts import Alerts
from app.ops.monitoring import BACKUP_LAST_VERIFIED, BACKUP_VERIFY_FAILURES

log = logging.getLogger("app.backups")

# The first check after a start waits this long (or one interval, if shorter), so that
# Litestream has replicated a brand-new database before it is restored.
FIRST_CHECK_AFTER = 60.0
# After a failure the next try comes this soon (or one interval), not a day later.
RETRY_AFTER = 3600.0


def start_verification(settings: Settings, alerts: Alerts | None = None) -> list[asyncio.Task]:
    """The verification task, when replication is on and BACKUP_VERIFY_INTERVAL is not 0;
    a failed check starts a `backup_verify_failed` system.alert, a good one ends it."""
    if not settings.replication_enabled or settings.backup_verify_interval == 0:
        BACKUP_LAST_VERIFIED.set(math.nan)  # no check: the age alert has nothing to say
        return []
    BACKUP_LAST_VERIFIED.set(0)  # not yet verified by this process
    return [asyncio.create_task(run(settings, alerts))]


async def run(settings: Settings, alerts: Alerts | None = None) -> None:
    """Verify the replica, then again every interval, until cancelled."""
    interval = float(settings.backup_verify_interval)
    delay = min(interval, FIRST_CHECK_AFTER)
    while True:
        await asyncio.sleep(delay)
        ok = await verify(settings)
        if alerts is not None:
            await report(alerts, ok)
        delay = interval if ok else min(interval, RETRY_AFTER)


async def verify(settings: Settings) -> bool:
    """Restore and check the replica once, off the event loop; record the outcome."""
    started = time.monotonic()
    try:
        result = await asyncio.to_thread(replication.verify_backup, settings)
    except Exception as exc:  # a failed restore of any kind is what this check is for
        BACKUP_VERIFY_FAILURES.inc()
        log.error("backup verification failed: %s", exc)
        return False
    if result != "ok":
        BACKUP_VERIFY_FAILURES.inc()
        log.error("backup verification: the restored copy fails integrity_check: %s", result[:500])
        return False
    BACKUP_LAST_VERIFIED.set(time.time())
    log.info("backup verified: restored and intact in %.1f s", time.monotonic() - started)
    return True


async def report(alerts: Alerts, ok: bool) -> None:
    """The outcome of a check, as the alert's episode: started by a failure, ended by a good one."""
    try:
        await alerts.observe(
            "backup_verify_failed", not ok,
            "restoring the replica failed or gave a damaged database; the app.backups log says why", "page",
        )
    except Exception:
        log.exception("could not record the backup alert")
