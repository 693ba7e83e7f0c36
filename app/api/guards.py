"""Route guards: who may call a handler, beyond being logged in.

Apart from the domain modules, so that any of them can guard a route without importing
another (the guard lived in accounts, which imports sharing, which needed the guard).
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException


def require_admin(connection: ASGIConnection, _: Any) -> None:
    """Guard: only the admin account. Raises PermissionDeniedException."""
    # Litestar answers OPTIONS itself, without authentication; it reveals nothing.
    if connection.scope["method"] == "OPTIONS":
        return
    if not connection.user.is_admin:
        raise PermissionDeniedException("only the admin may do this")
