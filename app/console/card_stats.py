"""A card's stats page: scans and views per day as a chart the server draws (with the same
numbers as a table), devices, countries and referrers as bars, and the CSV download. The
numbers are stats.card_report's, the report GET /v1/cards/{cardId}/stats answers."""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery

from app import cards, stats
from app.console import charts
from app.console.web import page
from app.db import DatabaseDep

PERIODS = (7, 30, 90, 365)  # days
DEFAULT_PERIOD = 30


def _period(days: int | None) -> int:
    return days if days in PERIODS else DEFAULT_PERIOD


@get("/cards/{cardId:str}/stats")
async def stats_page(request: Request, cardId: FromPath[str], db: DatabaseDep, days: FromQuery[int | None] = None) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    days = _period(days)
    report = await stats.card_report(db, card, days)
    daily = [(day.date, day.scans, day.views) for day in report.daily]
    return page(
        request, "console/stats/card.html", section="cards", card=card, report=report, days=days, periods=PERIODS,
        charts=[("wide", charts.daily_chart(daily, charts.WIDE)), ("narrow", charts.daily_chart(daily, charts.NARROW))],
        devices=charts.bar_widths(report.devices),
        countries=charts.bar_widths(report.countries), referrers=charts.bar_widths(report.referrers),
    )


@get("/cards/{cardId:str}/stats.csv")
async def stats_csv(request: Request, cardId: FromPath[str], db: DatabaseDep, days: FromQuery[int | None] = None) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    return stats.csv_download(card, await stats.card_report(db, card, _period(days)))


handlers = [stats_page, stats_csv]
