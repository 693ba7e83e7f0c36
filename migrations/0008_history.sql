-- Which history the database is (SPEC §7): one row, a random id made with it, and made
-- anew whenever the file is replaced by a restore (app/replication.py, renew_history).
-- A database restored to an earlier moment numbers its next card changes with the seqs
-- it had then, which the edges may already have heard for other slugs; the primary names
-- this id in every answer about its change sequence, so an edge that hears another id
-- knows that what it heard and what its copy holds belong to another history.
-- `began_by` says whether a restore began it ('restore') or this migration did: batches
-- of scans from edges may skip numbers only across a restore (app/edge_counts.py).
CREATE TABLE history (
    id TEXT NOT NULL,
    began_at TEXT NOT NULL,
    began_by TEXT NOT NULL CHECK (began_by IN ('migration', 'restore'))
);

INSERT INTO history (id, began_at, began_by)
VALUES (lower(hex(randomblob(16))), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'migration');
