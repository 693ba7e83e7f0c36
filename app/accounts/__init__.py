"""Accounts: who may use the service and how they prove it.

  users         the account's shape, the users table, consent and deletion
  hashing       argon2id for passwords (random tokens: app/tokens.py)
  registration  register under the REGISTRATION policy
  emails        verification of an address by an emailed link, and its page
  sessions      login, access tokens, refresh token families, the auth middleware
  passwords     change, and reset of a forgotten one by an emailed link
  api_keys      long-lived keys for scripts
  me            the /v1/me routes
  team          the team admin: users, invitations, admins, deactivation, card hand-over
  import_csv    reading a bulk import's CSV file: encoding, header, rows
  imports       the bulk import: a card each, invitations to those without an account

Each operation owns its transaction and its one `now` (`Tx.now`), and registers with it
what follows the commit (`Tx.after_commit`: wake the outbox, forget cached cards, count a
conversion): the API handlers and the console call the same functions and do nothing after. This module assembles the
routers app.main mounts.
"""

from __future__ import annotations

from litestar import Router

from app.accounts import api_keys, emails, imports, me, passwords, registration, sessions, team
from app.accounts.sessions import jwt_auth

auth_router = Router(
    "/auth",
    route_handlers=[*registration.handlers, emails.verify_email_handler, *sessions.handlers, *passwords.public_handlers],
    tags=["accounts"],
    opt={"exclude_from_auth": True},
)

# Needs credentials: the account's own routes (with /v1/auth/password) and the team admin's.
me_router = Router("/", route_handlers=[*me.handlers, *passwords.handlers, *api_keys.handlers], tags=["accounts"])
admin_router = Router("/", route_handlers=[team.router, imports.router])  # /admin/users..., /admin/import

public_handlers = emails.public_handlers

__all__ = ["admin_router", "auth_router", "jwt_auth", "me_router", "public_handlers"]
