"""The k-factor: weekly cohorts of new accounts, the invitations sent in each week and the
registrations they brought (SPEC §3, GET /v1/viral/k-factor, the console's growth page,
and the viral_k_factor gauge). It reads users and invitations and writes nothing.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Literal

import aiosqlite
import msgspec
from litestar import Router, get
from litestar.params import FromQuery
from prometheus_client import Gauge

from app.api.guards import require_admin
from app.api.problems import AUTHENTICATED, problems
from app.db import Database, DatabaseDep, fetch_all, isoformat

PERIODS = {"7d": 7, "30d": 30, "90d": 90}
Period = Literal["7d", "30d", "90d"]
VIRAL_K_FACTOR = Gauge("viral_k_factor", "k-factor over the last period (refreshed on every scrape)", ["period"])


class Cohort(msgspec.Struct, rename="camel"):
    cohort_week: str
    cohort_size: int
    invitations_sent: int
    conversions: int
    conversion_rate: float | None  # null when no invitation was sent that week
    k_factor: float | None  # null when no account was created that week


class KFactor(msgspec.Struct, rename="camel"):
    period: str
    k_factor: float | None
    cohorts: list[Cohort]


# ISO weeks without strftime('%V') (SQLite 3.46+): a week starts on the Monday on or
# before a day, date(x, '-6 days', 'weekday 1'), and its ISO year and number are those of
# its Thursday. Accounts and invitations are counted by the week they were created in,
# within the period only; conversions belong to the week their invitation was sent.
K_FACTOR_SQL = """
WITH RECURSIVE
weeks (week_start) AS (
    SELECT date(:since, '-6 days', 'weekday 1')
    UNION ALL
    SELECT date(week_start, '+7 days') FROM weeks WHERE date(week_start, '+7 days') <= :today
),
new_accounts (week_start, cohort_size) AS (
    SELECT date(created_at, '-6 days', 'weekday 1'), count(*) FROM users
    WHERE created_at >= :since AND created_at <= :until GROUP BY 1
),
sent (week_start, invitations_sent, conversions) AS (
    SELECT date(created_at, '-6 days', 'weekday 1'), count(*), count(converted_at) FROM invitations
    WHERE created_at >= :since AND created_at <= :until AND status <> 'failed' GROUP BY 1
),
cohorts AS (
    SELECT w.week_start, coalesce(a.cohort_size, 0) AS cohort_size,
        coalesce(s.invitations_sent, 0) AS invitations_sent, coalesce(s.conversions, 0) AS conversions
    FROM weeks w LEFT JOIN new_accounts a USING (week_start) LEFT JOIN sent s USING (week_start)
)
SELECT
    printf('%s-W%02d', strftime('%Y', week_start, '+3 days'),
        (CAST(strftime('%j', week_start, '+3 days') AS INTEGER) - 1) / 7 + 1) AS cohort_week,
    cohort_size, invitations_sent, conversions,
    CAST(conversions AS REAL) / NULLIF(invitations_sent, 0) AS conversion_rate,
    CAST(conversions AS REAL) / NULLIF(cohort_size, 0) AS k_factor,
    CAST(sum(conversions) OVER () AS REAL) / NULLIF(sum(cohort_size) OVER (), 0) AS period_k_factor
FROM cohorts ORDER BY week_start
"""


async def k_factor(conn: aiosqlite.Connection, period: str, now: datetime) -> KFactor:
    """Weekly cohorts over the last period, and the k-factor of the whole period."""
    rows = await fetch_all(
        conn,
        K_FACTOR_SQL,
        {"since": isoformat(now - timedelta(days=PERIODS[period])), "until": isoformat(now), "today": now.date().isoformat()},
    )
    return KFactor(
        period=period,
        k_factor=rows[0]["period_k_factor"],
        cohorts=[Cohort(*tuple(row)[:6]) for row in rows],
    )


async def report(db: Database, period: Period) -> KFactor:
    """The k-factor and its weekly cohorts over `period`, as of now (the API's and the console's)."""
    async with db.read() as conn:
        return await k_factor(conn, period, db.now())


async def refresh_gauges(db: Database) -> None:
    """Set viral_k_factor for every period (NaN while a period has no new account)."""
    now = db.now()
    async with db.read() as conn:
        for period in PERIODS:
            result = await k_factor(conn, period, now)
            VIRAL_K_FACTOR.labels(period).set(math.nan if result.k_factor is None else result.k_factor)


@get(
    "/viral/k-factor", operation_id="getKFactor", summary="Weekly cohorts and the k-factor (admin)", guards=[require_admin],
    tags=["sharing"], responses=problems(*AUTHENTICATED, 400, 403, 422),
)
async def get_k_factor(db: DatabaseDep, period: FromQuery[Period] = "30d") -> KFactor:
    return await report(db, period)


router = Router("/", route_handlers=[get_k_factor], tags=["sharing"])
