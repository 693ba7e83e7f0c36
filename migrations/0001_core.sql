-- Accounts, sessions, API keys and contact cards.
-- Times are ISO 8601 UTC text with microseconds; ids shown to clients are random text.

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    email_verified INTEGER NOT NULL DEFAULT 0,
    marketing_consent INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

-- Refresh tokens rotate: each use marks the row used and adds a successor in the same
-- family. A used or revoked token presented again revokes the whole family.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    family_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    revoked_at TEXT
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);

CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT
);
CREATE INDEX api_keys_by_user ON api_keys (user_id);

-- `id` orders cards (newest first) and makes the pagination cursor; `card_id` is public.
CREATE TABLE cards (
    id INTEGER PRIMARY KEY,
    card_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    slug TEXT NOT NULL UNIQUE,
    full_name TEXT NOT NULL,
    organization TEXT,
    title TEXT,
    email TEXT NOT NULL,
    phone TEXT,
    website TEXT,
    qr_error_correction TEXT NOT NULL DEFAULT 'M',
    qr_size INTEGER NOT NULL DEFAULT 512,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    view_count INTEGER NOT NULL DEFAULT 0,
    scan_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX cards_by_user ON cards (user_id, id DESC);

-- Printed codes outlive their cards: a deleted card's slug is never handed out again.
CREATE TABLE retired_slugs (
    slug TEXT PRIMARY KEY,
    retired_at TEXT NOT NULL
);
