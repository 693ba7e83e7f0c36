"""Errors as RFC 9457 problem documents, through Litestar's problem-details plugin.

Litestar's own conversion puts the message in `title`; the spec wants the status
phrase as `title`, the message as `detail`, and the offending fields listed for
validation errors, so every HTTPException goes through `to_problem` instead.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus

from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsException, ProblemDetailsPlugin
from prometheus_client import Counter

log = logging.getLogger("app.errors")
ERRORS = Counter("errors", "Requests that failed with a server error", ["kind"])
# Exported at 0 from the start, so rate() and alerts see the series before the first error.
for _kind in ("http", "unhandled"):
    ERRORS.labels(_kind)


class ConflictError(HTTPException):
    """The request conflicts with what is stored (a taken email or slug)."""

    status_code = 409


class UnprocessableError(HTTPException):
    """The request is well-formed but cannot be carried out as asked."""

    status_code = 422


def to_problem(exc: HTTPException) -> ProblemDetailsException:
    status = exc.status_code
    extra: dict = {}
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        # The body parsed but its values are wrong: 422, naming each field.
        status = 422
        extra["errors"] = [_field_error(item) for item in exc.extra if isinstance(item, dict)]
    elif isinstance(exc.extra, dict):
        extra.update(exc.extra)
    if status >= 500:
        ERRORS.labels("http").inc()
    headers = dict(exc.headers or {})
    if status == 429 and "RateLimit-Reset" in headers:
        # Litestar sends the draft RateLimit headers; clients and proxies look for Retry-After.
        headers["Retry-After"] = headers["RateLimit-Reset"]
    return ProblemDetailsException(
        status_code=status,
        title=HTTPStatus(status).phrase,
        detail=exc.detail if exc.detail != HTTPStatus(status).phrase else "",
        headers=headers,
        extra=extra or None,
    )


def _field_error(item: dict) -> dict:
    field, message = item.get("key"), str(item.get("message", ""))
    # msgspec reports a missing field against the whole body; name the field instead.
    if missing := re.search(r"missing required field `([^`]+)`", message):
        field, message = missing.group(1), "is required"
    # msgspec names the regex a value failed; the pattern itself helps nobody.
    elif "matching regex" in message:
        message = "has a format that is not allowed (check for control characters or a bad shape)"
    return {"field": field, "message": message, "source": item.get("source")}


def unexpected_to_problem(exc: Exception) -> ProblemDetailsException:
    # The traceback goes to the log, never to the client.
    log.error("unhandled error", exc_info=exc)
    ERRORS.labels("unhandled").inc()
    return ProblemDetailsException(status_code=500, title="Internal Server Error", detail="something went wrong")


problem_details = ProblemDetailsPlugin(
    ProblemDetailsConfig(
        exception_to_problem_detail_map={HTTPException: to_problem, Exception: unexpected_to_problem},
    )
)
