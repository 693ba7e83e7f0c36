-- What happens, recorded once, in the same transaction as the change itself (SPEC §9).
-- `event_id` is the public, sortable id (a ULID: its text order is the order of `id`);
-- `user_id` is whose event it is (the user it is about, or the card's owner): a member
-- sees the events whose user_id is theirs, an admin all. `data` is the subject's public
-- shape as JSON, never a secret, hash or token.
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    actor_id TEXT,
    user_id TEXT,
    data TEXT NOT NULL
);
CREATE INDEX events_by_user ON events (user_id, id);
CREATE INDEX events_by_type ON events (type, id);
CREATE INDEX events_by_time ON events (occurred_at);
