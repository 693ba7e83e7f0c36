"""Scan statistics: a card's scans, views and saves per day, by device class, country,
referrer and source, as JSON or as CSV, and every event of an account for its export.

The report comes from `scan_days`, the per-day sums the database keeps as counters.Counters
writes `scan_events` in batches together with the counters (so the last second of events
shows after the next flush); the export lists the events themselves. Days are UTC days.
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Annotated, Any, Literal

import aiosqlite
import msgspec
from litestar import Request, Response, Router, get
from litestar.params import FromPath, QueryParameter

from app.api.openapi import TEXT, media_types
from app.api.problems import AUTHENTICATED, problems
from app.cards import cards
from app.cards.types import Card
from app.db import Database, DatabaseDep, fetch_all
from app.fields import csv_cell
from app.public.counters import SOURCES

MAX_BREAKDOWN = 100  # countries and referrers beyond the top 100 are left out


# --- structs -------------------------------------------------------------------------


class Counts(msgspec.Struct, rename="camel"):
    scans: int
    views: int
    saves: int  # vCard downloads


class DayCounts(msgspec.Struct, rename="camel"):
    date: str
    scans: int
    views: int
    saves: int


class NamedCounts(msgspec.Struct, rename="camel"):
    name: str
    scans: int
    views: int
    saves: int


class CardStats(msgspec.Struct, rename="camel"):
    card_id: str
    days: int
    first_day: str
    last_day: str
    totals: Counts
    daily: list[DayCounts]
    devices: list[NamedCounts]
    countries: list[NamedCounts]
    referrers: list[NamedCounts]
    # Every source (counters.SOURCES) in that order, zeros included; events from before
    # sources were recorded are in no row of it (migrations/0012_saves_and_sources.sql).
    sources: list[NamedCounts]


class ScanEvent(msgspec.Struct, rename="camel"):
    card_id: str
    kind: str
    occurred_at: str
    device_class: str
    referrer_host: str | None
    country: str | None
    hits: int
    source: str | None


# --- SQL -----------------------------------------------------------------------------


async def grouped_counts(conn: aiosqlite.Connection, card_id: int, since: str) -> list[Any]:
    """(section, name, scans, views, saves) rows: per day, device class, country, referrer host
    and source, from the per-day sums in scan_days (migrations/0006_scan_days.sql, 0012)."""
    counted = "sum(scans) AS scans, sum(views) AS views, sum(saves) AS saves"
    window = "card_id = :card AND day >= :since"
    return await fetch_all(
        conn,
        f"""SELECT 'day' AS section, day AS name, {counted}
            FROM scan_days WHERE {window} AND grouping = 'device' GROUP BY day
        UNION ALL
        SELECT 'device', name, {counted} FROM scan_days WHERE {window} AND grouping = 'device' GROUP BY name
        UNION ALL
        SELECT * FROM (
            SELECT 'country', name, {counted} FROM scan_days WHERE {window} AND grouping = 'country'
            GROUP BY name ORDER BY sum(scans) + sum(views) DESC, name LIMIT {MAX_BREAKDOWN})
        UNION ALL
        SELECT * FROM (
            SELECT 'referrer', name, {counted} FROM scan_days WHERE {window} AND grouping = 'referrer'
            GROUP BY name ORDER BY sum(scans) + sum(views) DESC, name LIMIT {MAX_BREAKDOWN})
        UNION ALL
        SELECT 'source', name, {counted} FROM scan_days WHERE {window} AND grouping = 'source' GROUP BY name""",
        {"card": card_id, "since": since},
    )


async def list_user_events(conn: aiosqlite.Connection, user_id: str) -> list[ScanEvent]:
    rows = await fetch_all(
        conn,
        """SELECT c.card_id, e.kind, e.occurred_at, e.device_class, e.referrer_host, e.country, e.hits, e.source
        FROM scan_events e JOIN cards c ON c.id = e.card_id WHERE c.user_id = ? ORDER BY e.id""",
        (user_id,),
    )
    return [ScanEvent(*row) for row in rows]


# --- the report ----------------------------------------------------------------------


def build_stats(card: Card, days: int, today: date, rows: list[Any]) -> CardStats:
    first = today - timedelta(days=days - 1)
    # Each day's name made once: for a year's report this runs on the event loop between scans.
    names = [(first + timedelta(days=n)).isoformat() for n in range(days)]
    daily = {name: DayCounts(name, 0, 0, 0) for name in names}
    sections: dict[str, list[NamedCounts]] = {"device": [], "country": [], "referrer": [], "source": []}
    for row in rows:
        if row["section"] == "day":
            if row["name"] in daily:  # events stamped after midnight while the query ran
                daily[row["name"]] = DayCounts(row["name"], row["scans"], row["views"], row["saves"])
        else:
            sections[row["section"]].append(NamedCounts(row["name"], row["scans"], row["views"], row["saves"]))
    by_total = lambda item: (-(item.scans + item.views + item.saves), item.name)  # noqa: E731
    sources = {item.name: item for item in sections["source"]}
    return CardStats(
        card_id=card.card_id,
        days=days,
        first_day=first.isoformat(),
        last_day=today.isoformat(),
        totals=Counts(
            sum(d.scans for d in daily.values()), sum(d.views for d in daily.values()), sum(d.saves for d in daily.values()),
        ),
        daily=list(daily.values()),
        devices=sorted(sections["device"], key=by_total),
        countries=sorted(sections["country"], key=by_total),
        referrers=sorted(sections["referrer"], key=by_total),
        sources=[sources.get(name) or NamedCounts(name, 0, 0, 0) for name in SOURCES],
    )


def to_csv(stats: CardStats) -> str:
    """The report as one table: section, name, scans, views, saves."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    totals = stats.totals
    rows: list[tuple[str, str, int, int, int]] = [("total", "", totals.scans, totals.views, totals.saves)]
    rows += [("day", d.date, d.scans, d.views, d.saves) for d in stats.daily]
    sections = (
        ("device", stats.devices), ("country", stats.countries), ("referrer", stats.referrers), ("source", stats.sources),
    )
    for section, items in sections:
        rows += [(section, item.name, item.scans, item.views, item.saves) for item in items]
    writer.writerow(["section", "name", "scans", "views", "saves"])
    writer.writerows([csv_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


async def card_report(db: Database, card: Card, days: int) -> CardStats:
    """The card's report over the last `days` UTC days, today included (the API and the console read it here)."""
    today = db.now().date()
    since = (today - timedelta(days=days - 1)).isoformat()
    async with db.read() as conn:
        rows = await grouped_counts(conn, card.id, since)
    return build_stats(card, days, today, rows)


def csv_download(card: Card, stats: CardStats) -> Response[str]:
    """The report as a CSV attachment named after the card."""
    return Response(
        to_csv(stats),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{card.slug}-stats.csv"', "Cache-Control": "private, no-cache"},
    )


# --- handlers ------------------------------------------------------------------------


@get(
    "/cards/{cardId:str}/stats",
    operation_id="getCardStats",
    summary="Scans, views and saves per day, device class, country, referrer and source (JSON, or CSV with format=csv)",
    responses=problems(*AUTHENTICATED, 400, 404, 422),
    operation_class=media_types(200, {"text/csv": TEXT}, keep=True),
)
async def card_stats(
    request: Request,
    cardId: FromPath[str],
    db: DatabaseDep,
    days: Annotated[int, QueryParameter(ge=1, le=365, description="UTC days, today included")] = 30,
    format: Annotated[Literal["json", "csv"], QueryParameter(description="json (default) or csv")] = "json",
) -> Response[CardStats | str]:
    card = await cards.owned_card(db, request, cardId)
    stats = await card_report(db, card, days)
    if format == "csv":
        return csv_download(card, stats)
    return Response(stats, headers={"Cache-Control": "private, no-cache"})


router = Router("/", route_handlers=[card_stats], tags=["cards"])
