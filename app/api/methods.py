"""The HTTP methods every app here (primary or edge) answers alike: HEAD wherever GET is
answered, and OPTIONS and 405 answers whose `Allow` lists every method of a path."""

from __future__ import annotations

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import HTTPException
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils import normalize_path

# Set in the scope of a HEAD answered by the GET handler (head_like_get): a handler whose body
# never ends by itself (the event stream) reads it and sends none.
HEAD_ONLY = "qrcontact.head_only"


def with_head(methods) -> set[str]:
    """A path's methods as it answers them: HEAD wherever GET (head_like_get)."""
    return {*methods, "HEAD"} if "GET" in methods else set(methods)


def allow_header(app: Litestar):
    """A before-send hook that makes OPTIONS and 405 answers list every method of a path.

    Litestar builds the automatic OPTIONS answer while a router is still being filled,
    so `Allow` lists only the methods registered before it (OPTIONS /v1/cards said
    "OPTIONS, POST" without GET). The app's finished route table is the truth, with the
    HEAD that head_like_get adds; a 405's `Allow` (from Litestar's router) gets that HEAD too.
    """
    allowed = {
        route.path_format: ", ".join(sorted(with_head(route.methods))) for route in app.routes if isinstance(route, HTTPRoute)
    }

    async def before_send(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        if scope.get("method") == "OPTIONS":
            if methods := allowed.get(scope.get("path_template", "")):
                MutableScopeHeaders(message)["Allow"] = methods
        elif message["status"] == 405:
            headers = MutableScopeHeaders(message)
            if given := headers.get("allow"):
                headers["Allow"] = ", ".join(sorted(with_head([m.strip() for m in given.split(",")])))

    return before_send


def head_like_get(app: Litestar, handler: ASGIApp) -> ASGIApp:
    """Wrap the app: HEAD answers wherever GET does, with the GET's status and headers and no body.

    Litestar routes HEAD only to handlers that list it and answers 405 elsewhere (uptime
    checkers send HEAD /). It has no switch for the rest: listing HEAD on every GET handler
    would miss the ones Litestar makes itself (/schema) and put a HEAD operation beside
    every GET in the OpenAPI document. Handlers that list HEAD keep it: the public pages
    answer it themselves, and do not count it.
    """
    router = app.asgi_router

    def routed(path: str, method: str) -> bool:
        try:
            router.handle_routing(path=path, method=method)  # Litestar's own lookup, cached
        except HTTPException:  # no such path, or not this method
            return False
        return True

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await handler(scope, receive, send)
            return
        path = normalize_path(scope["path"])
        if routed(path, "HEAD") or not routed(path, "GET"):
            await handler(scope, receive, send)
            return

        async def send_head(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Back to HEAD before the server sees the answer: uvicorn reads the method
                # from this scope to write no body, and the access log names it.
                scope["method"] = "HEAD"
            elif message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # The same scope, not a copy: the access log reads the route's template and the
        # user from it, as for any other request.
        scope["method"] = "GET"
        scope[HEAD_ONLY] = True  # type: ignore[literal-required]
        try:
            await handler(scope, receive, send_head)
        finally:
            scope["method"] = "HEAD"

    return handle
