-- The team's brand (SPEC §10): one row for the instance's one team. It is read with each
-- public card (app/public/card_cache.py, and at an edge from its copy: it lives in the
-- database, so Litestream replicates it with the cards), and every change of it moves
-- every card in the change sequence (migration 0005) in the same transaction, so caches
-- and edges drop every card at once. `locked_fields` is a JSON array of the card fields
-- members cannot change, `defaults` a JSON object of the values new cards start with
-- (organization, website, phone, address). The logo is stored like a card's
-- (app/cards/images.py re-encodes it); `logo_hash` names it in its public URLs.
CREATE TABLE team_brand (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT,
    accent_color TEXT,
    qr_dark TEXT NOT NULL DEFAULT '#000000',
    qr_light TEXT NOT NULL DEFAULT '#ffffff',
    logo_on_codes INTEGER NOT NULL DEFAULT 0,
    locked_fields TEXT NOT NULL DEFAULT '[]',
    defaults TEXT NOT NULL DEFAULT '{}',
    logo_hash TEXT,
    logo BLOB,
    logo_thumbnail BLOB,
    updated_at TEXT
);
INSERT INTO team_brand (id) VALUES (1);
