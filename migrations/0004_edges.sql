-- Scans and views counted at edge regions arrive as numbered batches, each edge's from an
-- outbox file of its own (app/edge_outbox.py), shipped strictly in order, one at a time.
-- The primary keeps, per outbox file, the number of the last batch it applied: a batch
-- sent again after a lost acknowledgement has a number at or below it and is not applied
-- twice. One row per outbox file (an edge's data folder), not one per batch: it never
-- grows with traffic, and there is no window after which a late resend counts again.
CREATE TABLE edge_outboxes (
    outbox_id TEXT PRIMARY KEY,
    edge TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    first_applied_at TEXT NOT NULL,
    last_applied_at TEXT NOT NULL
);
