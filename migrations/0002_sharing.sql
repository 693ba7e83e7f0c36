-- Sharing and analytics: invitations and their funnel, the email outbox, email
-- verification tokens, and one row per counted scan or view.
-- Times are ISO 8601 UTC text with microseconds, like every other table.

-- One invitation per sender, recipient and UTC day: `recipient_key` is what "the same
-- recipient" means (a lower-cased email, a phone as +digits, `linkedin:<card id>` for a
-- LinkedIn post, which has no recipient), and the UNIQUE constraint makes a repeat a
-- no-op even when two requests race. `token_hash` is the SHA-256 of the tracked link's
-- token; the token itself is only in the message that carries it.
CREATE TABLE invitations (
    id INTEGER PRIMARY KEY,
    invitation_id TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    card_id INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
    sender_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    channel TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'whatsapp', 'linkedin')),
    recipient TEXT,
    recipient_key TEXT NOT NULL,
    day TEXT NOT NULL,
    message TEXT,
    -- The furthest stage reached; the *_at columns keep every stage's first time.
    status TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'opened', 'clicked', 'converted', 'failed')),
    created_at TEXT NOT NULL,
    sent_at TEXT,
    opened_at TEXT,
    clicked_at TEXT,
    converted_at TEXT,
    converted_user_id TEXT REFERENCES users (user_id) ON DELETE SET NULL,
    UNIQUE (sender_id, recipient_key, day)
);
CREATE INDEX invitations_by_card ON invitations (card_id, id DESC);
CREATE INDEX invitations_by_created ON invitations (created_at);
-- k-factor cohorts group accounts by the week they were created.
CREATE INDEX users_by_created ON users (created_at);

-- Single-use email verification tokens, stored as SHA-256 hashes.
CREATE TABLE email_verifications (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE INDEX email_verifications_by_user ON email_verifications (user_id);

-- The email queue. A job is inserted in the same transaction as what caused it and holds
-- the whole message, so a crash can lose none; `message` is cleared once the job is sent
-- or has failed, since it may carry a token. `message_id` is the Message-ID header,
-- the same on every attempt, so a repeat after a crash can be recognised.
CREATE TABLE email_outbox (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('verification', 'invitation')),
    recipient TEXT NOT NULL,
    message BLOB,
    user_id TEXT REFERENCES users (user_id) ON DELETE CASCADE,
    invitation_id INTEGER REFERENCES invitations (id) ON DELETE CASCADE,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX email_outbox_by_invitation ON email_outbox (invitation_id);
CREATE INDEX email_outbox_by_user ON email_outbox (user_id);

-- Counted scans and views, written in batches with the counters: one row per card, kind,
-- second, device class, referrer host and country, with `hits` requests behind it, so a
-- crowd scanning one code costs a row a second, not a row a scan. No client IP: only the
-- device class, the referrer's host and a country from a trusted proxy header.
CREATE TABLE scan_events (
    id INTEGER PRIMARY KEY,
    card_id INTEGER NOT NULL REFERENCES cards (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('scan', 'view')),
    occurred_at TEXT NOT NULL,
    device_class TEXT NOT NULL CHECK (device_class IN ('mobile', 'tablet', 'desktop', 'other')),
    referrer_host TEXT,
    country TEXT,
    hits INTEGER NOT NULL DEFAULT 1 CHECK (hits > 0)
);
CREATE INDEX scan_events_by_card ON scan_events (card_id, occurred_at);
