"""Random tokens and what is stored of them: the SHA-256 of each, never the token.

Refresh tokens, API keys, console session cookies, every emailed link's token and every
invitation's tracked link are random strings of 192 bits of entropy or more, so a slow
hash would add nothing but latency. The digests are in the database: `token_hash` must
keep giving the same hex digest for the same token.
"""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    """A random URL-safe token of 256 bits, for a link, a cookie or a refresh token."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What a table stores for a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()
