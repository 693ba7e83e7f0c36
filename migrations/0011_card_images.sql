-- A card's photo and logo (SPEC §8), stored in the database itself so that Litestream
-- replicates them and edges serve them from their copy. One row per card and kind: a new
-- upload replaces the row in the same transaction that records the card's change. The
-- bytes are ours (app/cards/images.py re-encodes every upload): a square JPEG of at most
-- 512 px and a 96 px thumbnail, without metadata. `content_hash` names the image in its
-- public URLs (/p/{slug}/photo-{hash}.jpg), which are cached for a year: a new image is
-- a new hash. The card's row carries the same hashes (photo_hash, logo_hash), so the
-- public pages, which look cards up by slug in memory, know the current URLs without
-- reading this table. A deleted card's images go with it (ON DELETE CASCADE).
CREATE TABLE card_images (
    id INTEGER PRIMARY KEY,
    card_id INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('photo', 'logo')),
    content_hash TEXT NOT NULL,
    image BLOB NOT NULL,
    thumbnail BLOB NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (card_id, kind)
);

ALTER TABLE cards ADD COLUMN photo_hash TEXT;
ALTER TABLE cards ADD COLUMN logo_hash TEXT;
