"""A card's stats page: scans, views and saves per day as a chart the server draws (with the
same numbers as a table), devices, countries and referrers as bars, sources as a table, and
the CSV download. The
numbers are stats.card_report's, the report GET /v1/cards/{cardId}/stats answers."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery

from app.cards import cards, stats
from app.console import charts
from app.console.web import off_loop, page_off_loop
from app.db import DatabaseDep
from app.events.events import latest_event

PERIODS = (7, 30, 90, 365)  # days
SOURCE_LABELS = {
    "qr": "QR code", "nfc": "NFC tag", "wallet": "Wallet pass", "signature": "Email signature",
    "share": "Shared invitation", "link": "Other links",
}
DEFAULT_PERIOD = 30


def period(days: int | None) -> int:
    return days if days in PERIODS else DEFAULT_PERIOD


def _drawings(report: stats.CardStats) -> dict[str, Any]:
    """The chart and the bars of a report: milliseconds for a year, so drawn off the event loop
    like the page itself (web.page_off_loop)."""
    daily = [(day.date, day.scans, day.views, day.saves) for day in report.daily]
    return {
        "charts": [("wide", charts.daily_chart(daily, charts.WIDE)), ("narrow", charts.daily_chart(daily, charts.NARROW))],
        "devices": charts.bar_widths(report.devices),
        "countries": charts.bar_widths(report.countries),
        "referrers": charts.bar_widths(report.referrers),
    }


@get("/cards/{cardId:str}/stats")
async def stats_page(request: Request, cardId: FromPath[str], db: DatabaseDep, days: FromQuery[int | None] = None) -> Response:
    live_after = await latest_event(db)  # before the report: the page's script follows the events after it
    card = await cards.card_of(db, request.user.user_id, cardId)
    days = period(days)
    report = await stats.card_report(db, card, days)
    drawings = await off_loop(_drawings, report)
    return await page_off_loop(
        request, "console/stats/card.html", section="cards", card=card, report=report, days=days, periods=PERIODS,
        source_labels=SOURCE_LABELS, live_after=live_after, **drawings,
    )


@get("/cards/{cardId:str}/stats.csv")
async def stats_csv(request: Request, cardId: FromPath[str], db: DatabaseDep, days: FromQuery[int | None] = None) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    return stats.csv_download(card, await stats.card_report(db, card, period(days)))


handlers = [stats_page, stats_csv]
