-- Webhooks (SPEC §9): endpoints a user registers, the deliveries of events to them, and the
-- sender's cursor into the events table.
--
-- `secret` (and `previous_secret` for 24 h after a rotation) is the signing key itself,
-- `whsec_` + base64: HMAC needs the key, so unlike a password or an API key it is stored
-- recoverable, never as a hash. It is shown to the owner only on creation and rotation.
-- `failing_since` is the first failed attempt since the last success (NULL while healthy):
-- five days of it disable the endpoint. `after_event` is the newest events.id when it was
-- created: only later events are sent to it. Events while it is disabled are not kept for it.
CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY,
    webhook_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    description TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until TEXT,
    failing_since TEXT,
    last_success_at TEXT,
    after_event INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX webhooks_by_user ON webhooks (user_id, id);

-- One row per message to one endpoint. `message_id` is the webhook-id header, the same on
-- every attempt (receivers dedupe by it); `body` is fixed when the row is made, so every
-- attempt sends the same bytes. A pending row whose attempt was cut short by a crash is
-- simply still pending: it is sent again.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    delivery_id TEXT NOT NULL UNIQUE,
    webhook INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_attempt_at TEXT,
    response_status INTEGER,
    response_body TEXT,
    latency_ms INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- The sender's look for each endpoint's oldest due deliveries (a seek, not a scan of the backlog).
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook, next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook, id);

-- The last events.id fanned out into deliveries: advanced in the same transaction that
-- inserts them, so a crash neither loses nor repeats the fan-out. Starts at the newest
-- event, so existing history is not replayed to the first webhook.
CREATE TABLE webhook_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_event INTEGER NOT NULL
);
INSERT INTO webhook_cursor (id, last_event) SELECT 1, coalesce(max(id), 0) FROM events;

-- The owner's email when five days of failures disable an endpoint.
CREATE TABLE email_outbox_new (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN (
        'verification', 'invitation', 'password_reset', 'email_change', 'team_invitation', 'lead', 'lead_card',
        'webhook_disabled'
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
