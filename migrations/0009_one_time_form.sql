-- Every stored time in one form: ISO 8601 UTC with microseconds and `Z`
-- (2026-12-07T11:46:19.123456Z, app/db.py isoformat), so text order is time order.
-- Two columns were written otherwise:
-- refresh_tokens.expires_at by Python's datetime.isoformat(), with `+00:00`, and without
-- the fraction when it was whole seconds (2027-01-06T11:46:19.123456+00:00, …19+00:00);
UPDATE refresh_tokens SET expires_at = substr(expires_at, 1, 26) || 'Z'
WHERE expires_at LIKE '____-__-__T__:__:__.______+00:00';
UPDATE refresh_tokens SET expires_at = substr(expires_at, 1, 19) || '.000000Z'
WHERE expires_at LIKE '____-__-__T__:__:__+00:00';
-- history.began_at by migration 0008 with SQLite's %f, milliseconds only (…19.123Z), which
-- sorted after every time of the same millisecond (…19.123456Z) when compared as text.
UPDATE history SET began_at = substr(began_at, 1, 23) || '000Z'
WHERE began_at LIKE '____-__-__T__:__:__.___Z';
