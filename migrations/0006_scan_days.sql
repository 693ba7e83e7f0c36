-- A card's stats report (app/stats.py) groups its scan events by UTC day, device class,
-- country and referrer host. Read from scan_events, a busy card's year is every one of
-- its event rows, read once per grouping. Here the same sums are kept per card, grouping,
-- day and name (scans and views side by side), so a report reads at most a few rows per
-- day whatever the traffic: the rows of one card's grouping are next to each other in
-- the primary key (WITHOUT ROWID), from the first day asked for on. A day's totals are
-- the sum over its device classes (every event has one). Country and referrer are
-- optional on an event; an event without one adds no row to that grouping.
CREATE TABLE scan_days (
    card_id INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
    grouping TEXT NOT NULL CHECK (grouping IN ('device', 'country', 'referrer')),
    day TEXT NOT NULL,
    name TEXT NOT NULL,
    scans INTEGER NOT NULL DEFAULT 0,
    views INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (card_id, grouping, day, name)
) WITHOUT ROWID;

INSERT INTO scan_days (card_id, grouping, day, name, scans, views)
SELECT card_id, 'device', substr(occurred_at, 1, 10), device_class,
    sum(CASE kind WHEN 'scan' THEN hits ELSE 0 END), sum(CASE kind WHEN 'view' THEN hits ELSE 0 END)
FROM scan_events GROUP BY 1, 3, 4;
INSERT INTO scan_days (card_id, grouping, day, name, scans, views)
SELECT card_id, 'country', substr(occurred_at, 1, 10), country,
    sum(CASE kind WHEN 'scan' THEN hits ELSE 0 END), sum(CASE kind WHEN 'view' THEN hits ELSE 0 END)
FROM scan_events WHERE country IS NOT NULL GROUP BY 1, 3, 4;
INSERT INTO scan_days (card_id, grouping, day, name, scans, views)
SELECT card_id, 'referrer', substr(occurred_at, 1, 10), referrer_host,
    sum(CASE kind WHEN 'scan' THEN hits ELSE 0 END), sum(CASE kind WHEN 'view' THEN hits ELSE 0 END)
FROM scan_events WHERE referrer_host IS NOT NULL GROUP BY 1, 3, 4;

-- Kept up to date by the database itself, in the transaction that writes the event:
-- every writer of scan_events (the counters' flush and edge batches through
-- counters.write_counts, tests and benches filling tables) keeps the sums right.
-- Events are only ever inserted, and removed only with their card (which removes its
-- scan_days rows too), so an insert trigger is all it takes.
CREATE TRIGGER scan_events_add_to_days AFTER INSERT ON scan_events
BEGIN
    INSERT INTO scan_days (card_id, grouping, day, name, scans, views)
    SELECT NEW.card_id, 'device', substr(NEW.occurred_at, 1, 10), NEW.device_class,
        iif(NEW.kind = 'scan', NEW.hits, 0), iif(NEW.kind = 'view', NEW.hits, 0)
    WHERE true
    ON CONFLICT (card_id, grouping, day, name) DO UPDATE SET scans = scans + excluded.scans, views = views + excluded.views;
    INSERT INTO scan_days (card_id, grouping, day, name, scans, views)
    SELECT NEW.card_id, 'country', substr(NEW.occurred_at, 1, 10), NEW.country,
        iif(NEW.kind = 'scan', NEW.hits, 0), iif(NEW.kind = 'view', NEW.hits, 0)
    WHERE NEW.country IS NOT NULL
    ON CONFLICT (card_id, grouping, day, name) DO UPDATE SET scans = scans + excluded.scans, views = views + excluded.views;
    INSERT INTO scan_days (card_id, grouping, day, name, scans, views)
    SELECT NEW.card_id, 'referrer', substr(NEW.occurred_at, 1, 10), NEW.referrer_host,
        iif(NEW.kind = 'scan', NEW.hits, 0), iif(NEW.kind = 'view', NEW.hits, 0)
    WHERE NEW.referrer_host IS NOT NULL
    ON CONFLICT (card_id, grouping, day, name) DO UPDATE SET scans = scans + excluded.scans, views = views + excluded.views;
END;
