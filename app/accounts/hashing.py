"""What is stored instead of a password: its argon2id hash. Passwords are chosen by people,
so they get a slow hash, off the event loop (random tokens get SHA-256: app/tokens.py).
"""

from __future__ import annotations

import asyncio
import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's recommended argon2id parameters: 19 MiB, 2 passes, 1 lane.
PRODUCTION_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
HASHER = PRODUCTION_HASHER  # what hashes and checks passwords (the in-process tests use a cheaper one)


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
