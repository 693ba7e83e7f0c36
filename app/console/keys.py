"""The API keys page: the account's keys (name, prefix, created, last used), a new key shown
once on the answer to its POST (never in a redirect or a cookie), and revoking with a
confirmation. The operations are api_keys.create_api_key and api_keys.revoke_api_key, as
for /v1/api-keys."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.params import FromPath

from app.accounts import api_keys
from app.console.web import field_error, form_of, page, see_other
from app.db import Database, DatabaseDep
from app.errors import NotFound
from app.fields import Label


async def _keys_page(request: Request, db: Database, *, status: int = 200, name: str = "", errors: dict | None = None,
                     created: api_keys.CreatedApiKey | None = None) -> Response:
    keys = await api_keys.api_keys_of(db, request.user.user_id)
    return page(request, "console/keys/list.html", status=status, section="account", keys=keys, name=name,
                errors=errors or {}, created=created)


@get("/account/keys")
async def keys_page(request: Request, db: DatabaseDep) -> Response:
    return await _keys_page(request, db)


@post("/account/keys")
async def create_key(request: Request, db: DatabaseDep) -> Response:
    form = await form_of(request)
    name = form.get("name", "").strip()
    if message := field_error(name, Label):
        errors = {"name": "Give the key a name, like “Zapier” or “build server”" if not name else message}
        return await _keys_page(request, db, status=422, name=name, errors=errors)
    created = await api_keys.create_api_key(db, request.user.user_id, name)
    # The key exists only in this answer (pages are never cached: Cache-Control no-store).
    return await _keys_page(request, db, status=201, created=created)


async def _key(db: Database, user_id: str, key_id: str) -> api_keys.ApiKey:
    key = next((key for key in await api_keys.api_keys_of(db, user_id) if key.key_id == key_id), None)
    if key is None:
        raise NotFound("no such API key")
    return key


@get("/account/keys/{keyId:str}/revoke")
async def revoke_form(request: Request, keyId: FromPath[str], db: DatabaseDep) -> Response:
    key = await _key(db, request.user.user_id, keyId)
    return page(request, "console/keys/revoke.html", section="account", key=key)


@post("/account/keys/{keyId:str}/revoke")
async def revoke_key(request: Request, keyId: FromPath[str], db: DatabaseDep) -> Response:
    await api_keys.revoke_api_key(db, request.user.user_id, keyId)
    return see_other("/app/account/keys", flash="key-revoked")


handlers = [keys_page, create_key, revoke_form, revoke_key]
