"""What is stored instead of a secret: argon2id hashes of passwords, SHA-256 hashes of tokens.

Refresh tokens, API keys and every emailed link's token are random strings with 256 bits
of entropy, so a slow hash would add nothing but latency: SHA-256 is stored. Passwords
are chosen by people, so they get argon2id, off the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's recommended argon2id parameters: 19 MiB, 2 passes, 1 lane.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(HASHER.hash, password)


async def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether the password fits the hash; with no hash (no such account) a decoy is
    checked, so the answer takes as long either way."""

    def verify() -> bool:
        try:
            return HASHER.verify(password_hash or _decoy_hash(), password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


@functools.cache
def _decoy_hash() -> str:
    return HASHER.hash(secrets.token_urlsafe(16))


def new_token() -> str:
    """A random URL-safe token of 256 bits, for a link, a cookie or a refresh token."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
