-- The outbox's `kind` no longer has a CHECK listing every kind of mail: each new kind
-- (0013, 0015) meant rebuilding the table. The kinds are named once, in app/mail.py
-- (MailKind), and `enqueue` refuses any other. Rebuilt once more, the last time.
CREATE TABLE email_outbox_new (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
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
