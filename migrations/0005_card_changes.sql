-- The card change sequence edges follow (SPEC §7). Every operation that changes what the
-- public pages show for a slug (a card created, edited, deleted, moved to another owner)
-- writes its slug here in the same transaction. One row per slug, moved to a new `seq`
-- at each change (AUTOINCREMENT: a seq is never reused, even for the row just replaced),
-- so the table stays as small as the set of slugs ever used and "what changed after N"
-- is a range of the primary key. An edge asks the primary for it over the private
-- network; scan counters never write here, so they never make an edge follow the replica.
CREATE TABLE card_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    slug TEXT NOT NULL UNIQUE,
    changed_at TEXT NOT NULL
);

-- Slugs that exist now start at their first seq, so a copy restored from this point on
-- knows every card it holds.
INSERT INTO card_changes (slug, changed_at) SELECT slug, updated_at FROM cards ORDER BY id;
INSERT OR IGNORE INTO card_changes (slug, changed_at) SELECT slug, retired_at FROM retired_slugs ORDER BY retired_at;
