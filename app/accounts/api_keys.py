"""API keys: long-lived credentials for scripts, shown once, stored as SHA-256 hashes."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import aiosqlite
import msgspec
from litestar import Request, delete, get, post
from litestar.params import FromPath, JSONBody

from app.accounts.users import USER_COLUMNS, User, user_of
from app.api.problems import AUTHENTICATED, BODY, WRITE, problems
from app.db import Database, DatabaseDep, fetch_all, fetch_one, isoformat
from app.errors import NotFound
from app.fields import Label
from app.sqlite import sqlite3
from app.tokens import new_token, token_hash

log = logging.getLogger("app.accounts")

API_KEY_PREFIX = "qrc_"

# --- structs -------------------------------------------------------------------------


class CreateApiKeyRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    name: Label


class ApiKey(msgspec.Struct, rename="camel"):
    key_id: str
    name: str
    prefix: str
    created_at: str
    last_used_at: str | None


class CreatedApiKey(msgspec.Struct, rename="camel"):
    key_id: str
    name: str
    prefix: str
    created_at: str
    key: str


# --- SQL -----------------------------------------------------------------------------


async def insert_api_key(conn: aiosqlite.Connection, user_id: str, name: str, now: datetime) -> CreatedApiKey:
    key = API_KEY_PREFIX + new_token()
    created = CreatedApiKey(
        key_id=uuid.uuid4().hex, name=name, prefix=key[: len(API_KEY_PREFIX) + 6], created_at=isoformat(now), key=key
    )
    await conn.execute(
        "INSERT INTO api_keys (key_id, user_id, name, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (created.key_id, user_id, name, token_hash(key), created.prefix, created.created_at),
    )
    return created


async def list_api_keys(conn: aiosqlite.Connection, user_id: str) -> list[ApiKey]:
    rows = await fetch_all(
        conn,
        """SELECT key_id, name, prefix, created_at, last_used_at FROM api_keys
        WHERE user_id = ? ORDER BY created_at DESC""",
        (user_id,),
    )
    return [ApiKey(**dict(r)) for r in rows]


async def delete_api_key(conn: aiosqlite.Connection, user_id: str, key_id: str) -> ApiKey | None:
    """Delete the key; returns what it was (None when the account has no such key)."""
    row = await fetch_one(
        conn,
        "DELETE FROM api_keys WHERE key_id = ? AND user_id = ? RETURNING key_id, name, prefix, created_at, last_used_at",
        (key_id, user_id),
    )
    return None if row is None else ApiKey(**dict(row))


async def user_for_api_key(conn: aiosqlite.Connection, key: str) -> tuple[User, str, str | None] | None:
    row = await fetch_one(
        conn,
        f"""SELECT {", ".join("u." + c.strip() for c in USER_COLUMNS.split(","))}, k.key_id, k.last_used_at
        FROM api_keys k JOIN users u USING (user_id) WHERE k.key_hash = ?""",
        (token_hash(key),),
    )
    return (user_of(row), row["key_id"], row["last_used_at"]) if row else None


async def touch_api_key(conn: aiosqlite.Connection, key_id: str, now: datetime) -> None:
    await conn.execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (isoformat(now), key_id))


# --- operations ----------------------------------------------------------------------


async def create_api_key(db: Database, user_id: str, name: str) -> CreatedApiKey:
    """A new API key; the key itself is in the answer only."""
    async with db.write() as tx:
        created = await insert_api_key(tx.conn, user_id, name, tx.now)
        await tx.emit("apikey.created", key_event_data(created), actor_id=user_id, user_id=user_id)
        return created


def key_event_data(key: ApiKey | CreatedApiKey) -> dict:
    """A key in its events (SPEC §9): its id, name and shown prefix; never the key nor its hash."""
    return {"keyId": key.key_id, "name": key.name, "prefix": key.prefix, "createdAt": key.created_at}


async def record_api_key_use(db: Database, key_id: str, last_used_at: str | None) -> None:
    """Note that a key was used (its lastUsedAt); never raises: it is bookkeeping only."""
    # At most hourly, so keys in busy scripts do not queue a write per request.
    if last_used_at is not None and last_used_at >= isoformat(db.now() - timedelta(hours=1)):
        return
    try:
        async with db.write() as tx:
            await touch_api_key(tx.conn, key_id, tx.now)
    except sqlite3.Error as exc:
        # A full disk must not turn a read made with a key into an error.
        log.warning("could not record API key use: %s", exc)


async def revoke_api_key(db: Database, user_id: str, key_id: str) -> None:
    """Raises NotFound when the account has no such key."""
    async with db.write() as tx:
        deleted = await delete_api_key(tx.conn, user_id, key_id)
        if deleted is None:
            raise NotFound("no such API key")
        await tx.emit("apikey.revoked", key_event_data(deleted), actor_id=user_id, user_id=user_id)


# --- handlers ------------------------------------------------------------------------


@post(
    "/api-keys", operation_id="createApiKey", summary="Create an API key (shown once)", status_code=201,
    responses=problems(*AUTHENTICATED, *BODY, *WRITE),
)
async def create_api_key_handler(
    request: Request[User, Any, Any], data: JSONBody[CreateApiKeyRequest], db: DatabaseDep
) -> CreatedApiKey:
    return await create_api_key(db, request.user.user_id, data.name)


async def api_keys_of(db: Database, user_id: str) -> list[ApiKey]:
    """The account's API keys, without the keys (the API's and the console's list)."""
    async with db.read() as conn:
        return await list_api_keys(conn, user_id)


@get("/api-keys", operation_id="listApiKeys", summary="The account's API keys, without the keys", responses=problems(*AUTHENTICATED))
async def get_api_keys(request: Request[User, Any, Any], db: DatabaseDep) -> list[ApiKey]:
    return await api_keys_of(db, request.user.user_id)


@delete(
    "/api-keys/{keyId:str}", operation_id="revokeApiKey", summary="Revoke an API key", status_code=204,
    responses=problems(*AUTHENTICATED, *WRITE, 400, 404),
)
async def revoke_api_key_handler(request: Request[User, Any, Any], keyId: FromPath[str], db: DatabaseDep) -> None:
    await revoke_api_key(db, request.user.user_id, keyId)


handlers = [create_api_key_handler, get_api_keys, revoke_api_key_handler]
