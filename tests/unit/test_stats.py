"""Scan statistics: events written with the counters in one transaction per flush, what
an event keeps (and never keeps), and the per-card report as JSON and as CSV."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
from datetime import UTC, datetime, timedelta

import pytest
from litestar.testing import TestClient

from app import db
from app.public.counters import MAX_REFERRER, Counters, DatabaseSink, device_class, referrer_host
from app.sqlite import sqlite3
from tests.support.app import PHONE_UA, assert_problem, create_card, flush_counters, make_settings, register
from tests.support.db import execute, query

ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36"
ANDROID_TABLET = "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
IPAD = "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"


@pytest.mark.parametrize(
    "agent, expected",
    [(PHONE_UA, "mobile"), (ANDROID, "mobile"), (ANDROID_TABLET, "tablet"), (IPAD, "tablet"), (WINDOWS, "desktop"),
     (MAC, "desktop"), ("SomeTV/1.0", "other"), (None, "other")],
)
def test_device_classes(agent, expected):
    assert device_class(agent) == expected


@pytest.mark.parametrize(
    "referer, expected",
    [
        ("https://News.Example.org/path?q=secret#x", "news.example.org"),
        ("http://user:pw@example.com:8080/", "example.com"),
        ("https://example.com./", "example.com"),
        ("android-app://com.google.android.gm/", None),
        ("javascript:alert(1)", None),
        ("https://=cmd|' /C calc'!A0/", None),
        ("https://-leading.example/", None),
        ("https://[::1]/", None),
        ("https://exa mple.com/", None),
        ("", None),
        (None, None),
    ],
)
def test_only_the_referrers_host_is_kept(referer, expected):
    assert referrer_host(referer) == expected


def visit(client, path, agent=PHONE_UA, **headers):
    return client.get(path, headers={"User-Agent": agent, **headers}, follow_redirects=False)


def stats(client, user, card, **params):
    response = client.get(f"/v1/cards/{card['cardId']}/stats", params=params, headers=user["headers"])
    assert response.status_code == 200, response.text
    return response


def test_the_report_counts_days_devices_countries_and_referrers(tmp_path, app_of):
    settings = make_settings(tmp_path, trust_proxy_headers=True)
    with TestClient(app_of(settings)) as client:
        user = register(client)
        card = create_card(client, user["headers"], slug="stats-card")
        visit(client, "/c/stats-card", PHONE_UA, **{"Fly-Region": "fra", "Referer": "https://blog.example.com/post"})
        visit(client, "/c/stats-card", ANDROID, **{"Fly-Region": "FRA"})
        visit(client, "/c/stats-card", IPAD, **{"Fly-Region": "lhr", "Referer": "https://blog.example.com/other"})
        visit(client, "/c/stats-card", WINDOWS, **{"Fly-Region": "nowhere"})
        visit(client, "/p/stats-card", MAC, **{"Fly-Region": "iad", "Referer": "https://www.linkedin.com/feed/"})
        visit(client, "/p/stats-card", PHONE_UA)
        visit(client, "/c/stats-card", "Twitterbot/1.0", **{"Fly-Region": "fra"})  # not counted
        flush_counters(client)
        body = stats(client, user, card, days=7).json()
    today = datetime.now(UTC).date()
    assert body["cardId"] == card["cardId"] and body["days"] == 7
    assert (body["firstDay"], body["lastDay"]) == ((today - timedelta(days=6)).isoformat(), today.isoformat())
    assert body["totals"] == {"scans": 4, "views": 2, "saves": 0}
    assert [d["date"] for d in body["daily"]] == [(today - timedelta(days=n)).isoformat() for n in range(6, -1, -1)]
    assert body["daily"][-1] == {"date": today.isoformat(), "scans": 4, "views": 2, "saves": 0}
    assert all(d["scans"] == d["views"] == d["saves"] == 0 for d in body["daily"][:-1])
    assert body["devices"] == [
        {"name": "mobile", "scans": 2, "views": 1, "saves": 0},
        {"name": "desktop", "scans": 1, "views": 1, "saves": 0},
        {"name": "tablet", "scans": 1, "views": 0, "saves": 0},
    ]
    assert body["countries"] == [
        {"name": "DE", "scans": 2, "views": 0, "saves": 0},
        {"name": "GB", "scans": 1, "views": 0, "saves": 0},
        {"name": "US", "scans": 0, "views": 1, "saves": 0},
    ]
    assert body["referrers"] == [
        {"name": "blog.example.com", "scans": 2, "views": 0, "saves": 0},
        {"name": "www.linkedin.com", "scans": 0, "views": 1, "saves": 0},
    ]
    # Scans without a src are the printed code's; views of /p/ without one, plain links.
    assert {s["name"]: (s["scans"], s["views"], s["saves"]) for s in body["sources"]} == {
        "qr": (4, 0, 0), "nfc": (0, 0, 0), "wallet": (0, 0, 0), "signature": (0, 0, 0), "share": (0, 0, 0), "link": (0, 2, 0),
    }


def test_no_country_without_a_trusted_proxy(client, user):
    card = create_card(client, user["headers"], slug="untrusted")
    visit(client, "/c/untrusted", **{"Fly-Region": "fra"})
    flush_counters(client)
    assert stats(client, user, card).json()["countries"] == []
    assert query(client.app.state.settings, "SELECT country FROM scan_events") == [(None,)]


def test_no_client_ip_is_stored_anywhere(tmp_path, app_of):
    settings = make_settings(tmp_path, trust_proxy_headers=True)
    with TestClient(app_of(settings)) as client:
        user = register(client)
        create_card(client, user["headers"], slug="private-scan")
        for path in ("/c/private-scan", "/p/private-scan"):
            visit(client, path, **{"Fly-Client-IP": "203.0.113.77", "X-Forwarded-For": "198.51.100.23", "Fly-Region": "ams"})
        flush_counters(client)
        assert query(settings, "SELECT sum(hits) FROM scan_events") == [(2,)]
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("qrcontact.db*"))
    assert b"203.0.113.77" not in stored and b"198.51.100.23" not in stored


def test_the_window_leaves_out_older_days(client, user, settings):
    card = create_card(client, user["headers"], slug="old-scans")
    visit(client, "/c/old-scans")
    flush_counters(client)
    now = datetime.now(UTC)
    for days_ago, count in ((1, 2), (29, 3), (30, 5)):
        stamp = (now - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")
        for _ in range(count):
            execute(
                settings,
                "INSERT INTO scan_events (card_id, kind, occurred_at, device_class)"
                " SELECT id, 'scan', ?, 'mobile' FROM cards WHERE slug = 'old-scans'",
                (stamp,),
            )
    assert stats(client, user, card).json()["totals"] == {"scans": 1 + 2 + 3, "views": 0, "saves": 0}
    assert stats(client, user, card, days=31).json()["totals"]["scans"] == 11
    one_day = stats(client, user, card, days=1).json()
    assert one_day["totals"]["scans"] == 1 and len(one_day["daily"]) == 1


@pytest.mark.parametrize("params", [{"days": 0}, {"days": 366}, {"days": "many"}, {"format": "xml"}])
def test_bad_report_parameters(client, user, params):
    card = create_card(client, user["headers"])
    response = client.get(f"/v1/cards/{card['cardId']}/stats", params=params, headers=user["headers"])
    assert_problem(response, response.status_code)
    assert 400 <= response.status_code < 500


HOSTILE = ['=HYPERLINK("http://evil.example","x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\tTAB", "\rCR"]


def test_csv_escapes_formulas(client, user, settings):
    card = create_card(client, user["headers"], slug="csv-card")
    visit(client, "/c/csv-card", Referer="https://safe.example/")
    flush_counters(client)
    # Hosts like these cannot come in through a Referer any more; rows from elsewhere
    # (an older version, a hand edit) must still come out harmless.
    for value in HOSTILE:
        execute(
            settings,
            "INSERT INTO scan_events (card_id, kind, occurred_at, device_class, referrer_host, country) "
            "SELECT id, 'view', ?, 'desktop', ?, ? FROM cards WHERE slug = 'csv-card'",
            (datetime.now(UTC).isoformat().replace("+00:00", "Z"), value, value),
        )
    response = stats(client, user, card, days=3, format="csv")
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="csv-card-stats.csv"'
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["section", "name", "scans", "views", "saves"]
    assert rows[1] == ["total", "", "1", str(len(HOSTILE)), "0"]
    assert [r[0] for r in rows[2:5]] == ["day"] * 3
    names = {r[1] for r in rows if r[0] in ("country", "referrer")}
    assert names == {"safe.example"} | {"'" + value for value in HOSTILE}
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    # The JSON report keeps the values as they are.
    assert {r["name"] for r in stats(client, user, card).json()["referrers"]} == {"safe.example", *HOSTILE}


def own_counters(client, *slugs):
    """A Counters of the test's own (the app's is flushed every second by its lifespan), and the cards."""
    state = client.app.state
    found = [client.blocking_portal.call(state.public_cards.get, slug) for slug in slugs]
    return Counters(DatabaseSink(state.db)), found


def test_one_flush_writes_a_burst_in_one_transaction(client, user, settings):
    for n in range(3):
        create_card(client, user["headers"], slug=f"burst-{n}")
    counters, cards = own_counters(client, "burst-0", "burst-1", "burst-2")
    for n in range(300):
        counters.scan(cards[n % 3], PHONE_UA, "https://example.com/", None)
    counters.view(cards[0], WINDOWS, None, "DE")
    assert client.blocking_portal.call(counters.flush) == 301
    assert client.blocking_portal.call(counters.flush) == 0
    assert query(settings, "SELECT sum(hits) FROM scan_events") == [(301,)]
    # Alike events of one second share one row: no two rows are alike, so the 3 cards' phone
    # scans and the desktop view are 4 rows, or up to 7 if the burst straddles a second.
    alike = """SELECT count(*) FROM (SELECT 1 FROM scan_events
        GROUP BY card_id, kind, occurred_at, device_class, referrer_host, country HAVING count(*) > 1)"""
    assert query(settings, alike) == [(0,)]
    ((rows,),) = query(settings, "SELECT count(*) FROM scan_events")
    assert 4 <= rows <= 7
    assert query(settings, "SELECT slug, scan_count, view_count FROM cards ORDER BY slug") == [
        ("burst-0", 100, 1),
        ("burst-1", 100, 0),
        ("burst-2", 100, 0),
    ]
    assert query(settings, "SELECT device_class, referrer_host, country, sum(hits) FROM scan_events GROUP BY 1, 2, 3 ORDER BY 1") == [
        ("desktop", None, "DE", 1),
        ("mobile", "example.com", None, 300),
    ]


def test_a_failed_flush_keeps_counts_and_events_for_the_next(client, user, settings):
    create_card(client, user["headers"], slug="retry-flush")
    counters, [card] = own_counters(client, "retry-flush")
    for _ in range(5):
        counters.scan(card, PHONE_UA, None, None)
    state = client.app.state

    async def failing_flush() -> None:
        # Every write fails inside SQLite while the writer connection is query-only.
        async with state.db._write_lock:
            await state.db._writer.execute("PRAGMA query_only = 1")
        try:
            await counters.flush()
        finally:
            async with state.db._write_lock:
                await state.db._writer.execute("PRAGMA query_only = 0")

    with pytest.raises(sqlite3.OperationalError):
        client.blocking_portal.call(failing_flush)
    assert query(settings, "SELECT count(*) FROM scan_events") == [(0,)]
    counters.scan(card, PHONE_UA, None, None)
    assert client.blocking_portal.call(counters.flush) == 6
    assert query(settings, "SELECT sum(hits) FROM scan_events") == [(6,)]
    assert query(settings, "SELECT scan_count FROM cards") == [(6,)]


def test_pending_events_are_bounded_by_distinct_entries_not_by_hits(client, user, settings):
    create_card(client, user["headers"], slug="crowded")
    counters, [card] = own_counters(client, "crowded")
    counters.MAX_PENDING_EVENTS = 3
    for _ in range(1000):  # a crowd of alike phones is one entry, however many
        counters.scan(card, PHONE_UA, None, None)
    for n in range(5):  # past the bound, new distinct entries are dropped; their scans still count
        counters.scan(card, f"{PHONE_UA} build/{n}", None, None)
    assert counters.dropped_events in (3, 4)  # 4 when the crowd straddled a second
    assert client.blocking_portal.call(counters.flush) == 1005 - counters.dropped_events
    assert query(settings, "SELECT scan_count FROM cards") == [(1005,)]


def test_pending_events_hold_a_bounded_amount_of_header_text(client, user, settings):
    create_card(client, user["headers"], slug="long-referrers")
    counters, [card] = own_counters(client, "long-referrers")
    counters.MAX_PENDING_TEXT = 100_000
    # Distinct 64 KiB referrers, as a hostile client could send: each is cut to
    # MAX_REFERRER characters, and past the text bound new entries are dropped.
    for n in range(100):
        counters.scan(card, PHONE_UA, f"https://example.com/{n:03d}/" + "x" * 65_536, None)
    held = counters._events_text
    assert held <= counters.MAX_PENDING_TEXT
    assert max(len(key[4]) for key in counters._events) == MAX_REFERRER
    kept = len(counters._events)
    assert kept == 100_000 // (MAX_REFERRER + len(PHONE_UA)) and counters.dropped_events == 100 - kept
    assert client.blocking_portal.call(counters.flush) == kept
    assert query(settings, "SELECT scan_count FROM cards") == [(100,)]
    assert query(settings, "SELECT DISTINCT referrer_host FROM scan_events") == [("example.com",)]


def test_events_of_a_card_deleted_before_the_flush_are_dropped(client, user, settings):
    keep = create_card(client, user["headers"], slug="kept-card")
    gone = create_card(client, user["headers"], slug="gone-soon")
    visit(client, "/c/kept-card")
    visit(client, "/c/gone-soon")
    client.delete(f"/v1/cards/{gone['cardId']}", headers=user["headers"])
    flush_counters(client)
    assert query(settings, "SELECT c.slug FROM scan_events e JOIN cards c ON c.id = e.card_id") == [("kept-card",)]
    assert stats(client, user, keep).json()["totals"]["scans"] == 1


def sums_of_events(settings) -> dict[tuple, tuple[int, int, int]]:
    """What scan_days should hold, worked out in Python from the scan_events rows."""
    sums: dict[tuple, list[int]] = {}
    events = query(
        settings, "SELECT card_id, kind, occurred_at, device_class, country, referrer_host, source, hits FROM scan_events",
    )
    for card_id, kind, occurred_at, device, country, referrer, source, hits in events:
        for grouping, name in (("device", device), ("country", country), ("referrer", referrer), ("source", source)):
            if name is not None:
                counts = sums.setdefault((card_id, grouping, occurred_at[:10], name), [0, 0, 0])
                counts[("scan", "view", "save").index(kind)] += hits
    return {key: tuple(counts) for key, counts in sums.items()}


def scan_days(settings) -> dict[tuple, tuple[int, int, int]]:
    rows = query(settings, "SELECT card_id, grouping, day, name, scans, views, saves FROM scan_days")
    return {(card_id, grouping, day, name): (scans, views, saves) for card_id, grouping, day, name, scans, views, saves in rows}


def add_events(settings, slug: str) -> None:
    """Events over several days, of both kinds, with and without a country and a referrer."""
    now = datetime.now(UTC)
    for n, (kind, device, referrer, country) in enumerate(
        [("scan", "mobile", None, None), ("view", "desktop", "example.org", "DE"), ("scan", "mobile", "example.org", "DE"),
         ("scan", "tablet", None, "US"), ("view", "mobile", "news.example", None)] * 3
    ):
        execute(
            settings,
            "INSERT INTO scan_events (card_id, kind, occurred_at, device_class, referrer_host, country, hits)"
            " SELECT id, ?, ?, ?, ?, ?, ? FROM cards WHERE slug = ?",
            (kind, (now - timedelta(days=n % 4)).isoformat().replace("+00:00", "Z"), device, referrer, country, n + 1, slug),
        )


def test_scan_days_hold_the_sums_of_scan_events_backfilled_then_kept(tmp_path, monkeypatch, app_of):
    # A database of the version before migration 0006 (which fills scan_days from the
    # events), with cards and events written as that version did; then every migration
    # since (0012 makes both tables again, with saves and sources), then today's app.
    before = tmp_path / "before-0006"
    before.mkdir()
    for file in sorted(db.MIGRATIONS_DIR.glob("*.sql")):
        if file.name < "0006":
            (before / file.name).write_text(file.read_text())
    settings = make_settings(tmp_path / "data")
    with monkeypatch.context() as patch:
        patch.setattr(db, "MIGRATIONS_DIR", before)
        db.migrate(settings.database_path)
    stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    execute(settings, "INSERT INTO users (user_id, email, password_hash, created_at) VALUES ('u1', 'old@example.com', 'x', ?)", (stamp,))
    for n, slug in enumerate(("older", "doomed")):
        execute(
            settings,
            "INSERT INTO cards (card_id, user_id, slug, full_name, email, created_at, updated_at)"
            " VALUES (?, 'u1', ?, 'Old Card', 'old@example.com', ?, ?)",
            (f"{n:032x}", slug, stamp, stamp),
        )
        add_events(settings, slug)
    applied = db.migrate(settings.database_path)
    assert applied[0] == "0006_scan_days.sql" and "0012_saves_and_sources.sql" in applied
    assert scan_days(settings) == sums_of_events(settings) != {}
    assert query(settings, "SELECT count(*) FROM scan_events WHERE source IS NOT NULL") == [(0,)]  # not known then
    # From then on the database adds every new event: the counters' flush and rows written by hand.
    with TestClient(app_of(settings)) as client:
        visit(client, "/c/older", WINDOWS, Referer="https://blog.example.com/")
        visit(client, "/c/older?src=wallet")
        visit(client, "/p/doomed")
        visit(client, "/p/older.vcf?src=signature")
        flush_counters(client)
        add_events(settings, "older")
        assert scan_days(settings) == sums_of_events(settings)
        assert scan_days(settings)[(1, "source", stamp[:10], "signature")] == (0, 0, 1)
    conn = sqlite3.connect(settings.database_path)
    with conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM cards WHERE slug = 'doomed'")
    conn.close()
    assert scan_days(settings) == sums_of_events(settings)
    assert {card_id for card_id, *_ in scan_days(settings)} == {card_id for (card_id,) in query(settings, "SELECT id FROM cards")}


def test_a_deposed_primary_keeps_its_counts_and_says_so_once(client, user, settings, caplog):
    """A primary that lost its role refuses writes (db.refuse_writes, app/ops/failover.py):
    its counter flushes fail every second, and the log says so once, not each time."""
    create_card(client, user["headers"], slug="deposed")
    counters, [card] = own_counters(client, "deposed")
    db = client.app.state.db
    db.refuse_writes = "this server is no longer the primary"
    flushes, scanned = 0, 0
    flush = counters.flush

    async def counted_flush() -> int:
        nonlocal flushes
        flushes += 1
        return await flush()

    counters.flush = counted_flush  # what run() calls: counted, so the test sees three refusals

    async def flushes_refused_again_and_again() -> None:
        nonlocal scanned
        runner = asyncio.create_task(counters.run(interval=0.001))
        while flushes < 3:  # each flush waits for its scan: every one of them has counts to write
            counters.scan(card, PHONE_UA, None, None)
            scanned += 1
            seen = flushes
            while flushes == seen:
                await asyncio.sleep(0.001)
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner

    try:
        with caplog.at_level(logging.WARNING, logger="app"):
            client.blocking_portal.call(flushes_refused_again_and_again)
    finally:
        db.refuse_writes = None
    said = [r for r in caplog.records if "no longer the primary" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert flushes >= 3 and counters.pending(card.card_id)[0] == scanned  # kept for a flush that can write
    assert client.blocking_portal.call(flush) >= scanned
    assert query(settings, "SELECT scan_count FROM cards WHERE slug = 'deposed'") == [(scanned,)]
