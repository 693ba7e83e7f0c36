-- Saves and sources (SPEC §8): a `.vcf` download is a third kind of event, a "save",
-- counted like scans and views (cards.save_count, scan_events rows of kind 'save', the
-- per-day sums in scan_days), and every event records the source of the visit it belongs
-- to: qr, nfc, wallet, signature, share or link (the rule is in docs/api.md, "Sources").
-- Events from before this migration, and from an edge of the version before, have no
-- source (NULL): they count in every total and grouping but that one.

ALTER TABLE cards ADD COLUMN save_count INTEGER NOT NULL DEFAULT 0;

-- SQLite cannot change a CHECK constraint in place: scan_events and scan_days are made
-- again with the new kind and grouping (migrations run with foreign keys off), their
-- rows copied as they are, ids kept.
CREATE TABLE scan_events_new (
    id INTEGER PRIMARY KEY,
    card_id INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('scan', 'view', 'save')),
    occurred_at TEXT NOT NULL,
    device_class TEXT NOT NULL CHECK (device_class IN ('mobile', 'tablet', 'desktop', 'other')),
    referrer_host TEXT,
    country TEXT,
    hits INTEGER NOT NULL DEFAULT 1 CHECK (hits > 0),
    source TEXT CHECK (source IN ('qr', 'nfc', 'wallet', 'signature', 'share', 'link'))
);
INSERT INTO scan_events_new (id, card_id, kind, occurred_at, device_class, referrer_host, country, hits)
SELECT id, card_id, kind, occurred_at, device_class, referrer_host, country, hits FROM scan_events;
DROP TABLE scan_events;  -- and its trigger, scan_events_add_to_days, made again below
ALTER TABLE scan_events_new RENAME TO scan_events;
CREATE INDEX scan_events_by_card ON scan_events (card_id, occurred_at);

CREATE TABLE scan_days_new (
    card_id INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
    grouping TEXT NOT NULL CHECK (grouping IN ('device', 'country', 'referrer', 'source')),
    day TEXT NOT NULL,
    name TEXT NOT NULL,
    scans INTEGER NOT NULL DEFAULT 0,
    views INTEGER NOT NULL DEFAULT 0,
    saves INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (card_id, grouping, day, name)
) WITHOUT ROWID;
INSERT INTO scan_days_new (card_id, grouping, day, name, scans, views)
SELECT card_id, grouping, day, name, scans, views FROM scan_days;
DROP TABLE scan_days;
ALTER TABLE scan_days_new RENAME TO scan_days;

-- As in 0006, with saves beside scans and views, and a fourth grouping by source (an
-- event without one adds no row to it, as for country and referrer).
CREATE TRIGGER scan_events_add_to_days AFTER INSERT ON scan_events
BEGIN
    INSERT INTO scan_days (card_id, grouping, day, name, scans, views, saves)
    SELECT NEW.card_id, 'device', substr(NEW.occurred_at, 1, 10), NEW.device_class,
        iif(NEW.kind = 'scan', NEW.hits, 0), iif(NEW.kind = 'view', NEW.hits, 0), iif(NEW.kind = 'save', NEW.hits, 0)
    WHERE true
    ON CONFLICT (card_id, grouping, day, name) DO UPDATE
        SET scans = scans + excluded.scans, views = views + excluded.views, saves = saves + excluded.saves;
    INSERT INTO scan_days (card_id, grouping, day, name, scans, views, saves)
    SELECT NEW.card_id, 'country', substr(NEW.occurred_at, 1, 10), NEW.country,
        iif(NEW.kind = 'scan', NEW.hits, 0), iif(NEW.kind = 'view', NEW.hits, 0), iif(NEW.kind = 'save', NEW.hits, 0)
    WHERE NEW.country IS NOT NULL
    ON CONFLICT (card_id, grouping, day, name) DO UPDATE
        SET scans = scans + excluded.scans, views = views + excluded.views, saves = saves + excluded.saves;
    INSERT INTO scan_days (card_id, grouping, day, name, scans, views, saves)
    SELECT NEW.card_id, 'referrer', substr(NEW.occurred_at, 1, 10), NEW.referrer_host,
        iif(NEW.kind = 'scan', NEW.hits, 0), iif(NEW.kind = 'view', NEW.hits, 0), iif(NEW.kind = 'save', NEW.hits, 0)
    WHERE NEW.referrer_host IS NOT NULL
    ON CONFLICT (card_id, grouping, day, name) DO UPDATE
        SET scans = scans + excluded.scans, views = views + excluded.views, saves = saves + excluded.saves;
    INSERT INTO scan_days (card_id, grouping, day, name, scans, views, saves)
    SELECT NEW.card_id, 'source', substr(NEW.occurred_at, 1, 10), NEW.source,
        iif(NEW.kind = 'scan', NEW.hits, 0), iif(NEW.kind = 'view', NEW.hits, 0), iif(NEW.kind = 'save', NEW.hits, 0)
    WHERE NEW.source IS NOT NULL
    ON CONFLICT (card_id, grouping, day, name) DO UPDATE
        SET scans = scans + excluded.scans, views = views + excluded.views, saves = saves + excluded.saves;
END;
