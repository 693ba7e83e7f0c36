-- card.scanned is at most one event per card a second (SPEC §9). An edge's batch of scans
-- is applied in its own transaction, and several batches (and the primary's own counting)
-- can reach a card within one second: the batch's counts are written at once, and its
-- card.scanned data waits here, merged per card, in the same transaction; the primary's
-- next flush (once a second) takes it, merges it with its own and writes one event per card.
CREATE TABLE held_scans (
    card_id TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
