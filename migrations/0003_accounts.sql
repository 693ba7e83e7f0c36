-- What the console and the team admin need of accounts: console sessions, password
-- resets, email changes confirmed by the new address, team invitations, and the
-- account's state (deactivated, last login, when marketing consent last changed).
-- Tokens are stored as SHA-256 hashes; the token itself is only in the email or cookie.

ALTER TABLE users ADD COLUMN marketing_consent_at TEXT;
ALTER TABLE users ADD COLUMN last_login_at TEXT;
-- A deactivated account cannot log in or use its keys; its cards keep answering scans.
ALTER TABLE users ADD COLUMN deactivated_at TEXT;
UPDATE users SET marketing_consent_at = created_at WHERE marketing_consent = 1;

-- Console sessions: the cookie carries a random token, the row its hash. Logout deletes
-- the row; a password change or a deactivation deletes the account's other rows.
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);
CREATE INDEX web_sessions_by_user ON web_sessions (user_id);

-- Single-use links for a forgotten password (1 hour).
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE INDEX password_resets_by_user ON password_resets (user_id);

-- An email change waits for the link sent to the new address.
CREATE TABLE email_changes (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    new_email TEXT NOT NULL COLLATE NOCASE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE INDEX email_changes_by_user ON email_changes (user_id);

-- The team admin's invitations: the token registers its holder even when
-- REGISTRATION=invite. Separate from `invitations`, which belong to a card's sharing funnel.
CREATE TABLE team_invitations (
    token_hash TEXT PRIMARY KEY,
    invitation_id TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL COLLATE NOCASE,
    invited_by TEXT REFERENCES users (user_id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    user_id TEXT REFERENCES users (user_id) ON DELETE SET NULL
);
CREATE INDEX team_invitations_by_email ON team_invitations (email);

-- The outbox carries the new kinds of email; SQLite cannot change a CHECK in place, so
-- the table is rebuilt with the same rows (nothing references it).
CREATE TABLE email_outbox_new (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('verification', 'invitation', 'password_reset', 'email_change', 'team_invitation')),
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
