-- Each deactivation moves an account's token version on. An access token (a JWT, valid
-- until it expires) carries the version it was issued under and is refused once the
-- account's has moved on, so reactivating an account does not bring back the tokens
-- issued before its deactivation. (A time would not tell them apart: a JWT's `iat`
-- counts whole seconds, and a deactivation, a reactivation and a login can share one.)
-- Tokens issued before this migration carry no version, which counts as 0: those of
-- accounts deactivated now stay refused after a reactivation too.
ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;
UPDATE users SET token_version = 1 WHERE deactivated_at IS NOT NULL;
