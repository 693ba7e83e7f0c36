"""Charts the server draws: the geometry of an SVG as plain numbers, which a template turns
into elements. No inline styles (the CSP refuses them): colours and type come from
console.css through class names, sizes are attributes."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date

# A drawing scales with its width, text included, so a phone gets a drawing of its own
# (narrower, relatively taller) rather than a desktop one shrunk to unreadable labels.
WIDE = (640, 240)
NARROW = (360, 260)
TOP, MARGIN, BELOW = 28, 8, 36  # room above the top line, at the sides, and for the dates under the baseline
DOTS_UP_TO = 31  # days: beyond this the dots would merge into the line


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True, slots=True)
class Label:
    x: float
    text: str
    anchor: str  # start, middle or end


@dataclass(frozen=True, slots=True)
class Dot:
    x: float
    y: float
    title: str


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    css: str  # the class that colours it
    points: str  # for <polyline points=…>
    area: str  # the same line closed down to the baseline, for <polygon points=…>
    dots: list[Dot]


@dataclass(frozen=True, slots=True)
class DailyChart:
    width: int
    height: int
    left: int
    right: int
    baseline: int
    ticks: list[Tick]
    labels: list[Label]
    series: list[Series]


def nice_top(largest: int) -> int:
    """The axis' top: 4 steps of 1, 2 or 5 × 10ⁿ that reach at least `largest` (4 when nothing was counted),
    so each of its four ticks is a whole number. Every chart's y axis."""
    return next(top for n in itertools.count() for top in (4 * 10**n, 8 * 10**n, 20 * 10**n) if top >= largest)


def short_date(day: str) -> str:
    value = date.fromisoformat(day)
    return f"{value.day} {value:%b}"


def daily_chart(days: list[tuple], size: tuple[int, int] = WIDE) -> DailyChart:
    """Scans, views and saves per day (date, scans, views[, saves]), oldest first, as a line each
    over a shared axis (saves drawn last, on top: they are the fewest)."""
    width, height = size
    LEFT, RIGHT, BOTTOM = MARGIN, width - MARGIN, height - BELOW  # noqa: N806
    dots_up_to = DOTS_UP_TO if width >= WIDE[0] else DOTS_UP_TO // 3
    top = nice_top(max((max(day[1:]) for day in days), default=0))
    columns = len(days[0]) if days else 3
    span = max(len(days) - 1, 1)

    def x(index: int) -> float:
        return round(LEFT + (RIGHT - LEFT) * (index / span if len(days) > 1 else 0.5), 1)

    def y(value: int) -> float:
        return round(BOTTOM - (BOTTOM - TOP) * value / top, 1)

    series = []
    for name, css, column in (("Views", "views", 2), ("Scans", "scans", 1), ("Saves", "saves", 3)):
        if column >= columns:
            continue
        coords = [(x(i), y(day[column])) for i, day in enumerate(days)]
        points = " ".join(f"{px},{py}" for px, py in coords)
        area = f"{coords[0][0]},{BOTTOM} {points} {coords[-1][0]},{BOTTOM}" if coords else ""
        dots = [
            Dot(px, py, f"{short_date(day[0])}: {day[column]} {name.lower()}")
            for (px, py), day in zip(coords, days, strict=True)
        ] if len(days) <= dots_up_to else []
        series.append(Series(name, css, points, area, dots))
    ticks = [Tick(y(top * n // 4), f"{top * n // 4:,}") for n in range(0, 5)]
    labels = []
    if days:
        labels.append(Label(LEFT, short_date(days[0][0]), "start"))
        if len(days) > 2:
            labels.append(Label(x(len(days) // 2), short_date(days[len(days) // 2][0]), "middle"))
        if len(days) > 1:
            labels.append(Label(RIGHT, short_date(days[-1][0]), "end"))
    return DailyChart(width, height, LEFT, RIGHT, BOTTOM, ticks, labels, series)


def bar_widths(items: list, scale_of=lambda item: item.scans + item.views + item.saves) -> list[dict]:
    """Each item of a breakdown as a dict with `width`, its share of the largest (0–100)."""
    largest = max((scale_of(item) for item in items), default=0) or 1
    return [
        {
            "name": item.name, "scans": item.scans, "views": item.views, "saves": item.saves,
            "width": round(100 * scale_of(item) / largest, 1),
        }
        for item in items
    ]
