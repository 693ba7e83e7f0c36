-- Contact exchange (SPEC §8): what visitors of a card page send back to its owner.
-- A lead belongs to the account that owned the card when it arrived and dies with that
-- account (ON DELETE CASCADE). It outlives its card: `card_id` has no foreign key, and the
-- card's slug and name are kept as they were, so the console can say "deleted card".
-- `lead_id` is minted where the form was answered (the primary, or an edge that kept the
-- lead while the primary was down): the key that makes shipping it again a no-op.
CREATE TABLE leads (
    id INTEGER PRIMARY KEY,
    lead_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    card_id TEXT NOT NULL,
    card_slug TEXT NOT NULL,
    card_name TEXT NOT NULL,
    name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    company TEXT,
    note TEXT,
    -- The consent sentence exactly as the visitor saw it next to the checkbox, and when.
    consent_text TEXT NOT NULL,
    consented_at TEXT NOT NULL,
    wants_card INTEGER NOT NULL DEFAULT 0,
    -- A keyed hash of the client's address (never the address): the per-IP limit counts it.
    client_key TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX leads_by_user ON leads (user_id, id DESC);
CREATE INDEX leads_by_card ON leads (card_id, created_at);
CREATE INDEX leads_by_client ON leads (client_key, created_at);

-- Two new kinds of email: the owner's "new lead" and the visitor's copy of the card.
-- SQLite cannot change a CHECK in place, so the table is rebuilt with the same rows.
CREATE TABLE email_outbox_new (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN (
        'verification', 'invitation', 'password_reset', 'email_change', 'team_invitation', 'lead', 'lead_card'
    )),
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
INSERT INTO email_outbox_new
    (id, message_id, kind, recipient, message, user_id, invitation_id, status, attempts, next_attempt_at, last_error, created_at, finished_at)
SELECT id, message_id, kind, recipient, message, user_id, invitation_id, status, attempts, next_attempt_at, last_error, created_at, finished_at
FROM email_outbox;
DROP TABLE email_outbox;
ALTER TABLE email_outbox_new RENAME TO email_outbox;
CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX email_outbox_by_invitation ON email_outbox (invitation_id);
CREATE INDEX email_outbox_by_user ON email_outbox (user_id);
