-- Bulk import (SPEC §10, app/accounts/imports.py): the cards an admin imported for people
-- who have no account yet. The card exists at once (its code can be printed the same day)
-- and belongs to the admin who imported it until its person registers through a team
-- invitation for this address; then it is theirs and its row here goes. One row per
-- address: the import is idempotent by email. A deleted card takes its row with it.
CREATE TABLE imported_cards (
    email TEXT PRIMARY KEY COLLATE NOCASE,
    card_id TEXT NOT NULL REFERENCES cards (card_id) ON DELETE CASCADE,
    imported_by TEXT REFERENCES users (user_id) ON DELETE SET NULL,
    imported_at TEXT NOT NULL
);
CREATE INDEX imported_cards_by_card ON imported_cards (card_id);
