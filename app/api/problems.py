"""Errors as RFC 9457 problem documents, through Litestar's problem-details plugin.

Litestar's own conversion puts the message in `title`; the spec wants the status
phrase as `title`, the message as `detail`, and the offending fields listed for
validation errors, so every HTTPException goes through `to_problem` instead. Domain
errors (app/errors.py) get their status here, the only place that knows it.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus

import msgspec
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsException, ProblemDetailsPlugin
from prometheus_client import Counter

from app.errors import Conflict, DomainError, Forbidden, Invalid, Limited, NotFound, TooLarge, Unauthenticated, Unavailable, Unsupported
from app.sqlite import sqlite3

log = logging.getLogger("app.errors")
ERRORS = Counter("errors", "Requests that failed with a server error", ["kind"])
# Exported at 0 from the start, so rate() and alerts see the series before the first error.
for _kind in ("http", "unhandled"):
    ERRORS.labels(_kind)


# --- the documented shape ------------------------------------------------------------


class FieldError(msgspec.Struct):
    field: str | None
    message: str
    source: str | None = None


class Problem(msgspec.Struct):
    """An RFC 9457 problem document: how every error is answered."""

    status: int
    title: str
    detail: str | msgspec.UnsetType = msgspec.UNSET
    errors: list[FieldError] | msgspec.UnsetType = msgspec.UNSET


PROBLEM_MEDIA_TYPE = "application/problem+json"
WHY = {
    400: "The body is not JSON, or a parameter has the wrong type",
    401: "Missing, invalid or expired credentials",
    403: "Not allowed",
    404: "No such resource, or it belongs to someone else",
    409: "Conflicts with what is stored",
    413: "The request body is larger than the limit (64 KiB)",
    415: "The body is not sent as application/json",
    422: "The values are not acceptable; `errors` names each field",
    429: "Too many requests: wait `Retry-After` seconds",
    503: "The service cannot store writes right now (storage full or busy): retry later",
}


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI responses for the error statuses a handler can answer, each a problem document."""
    return {
        status: ResponseSpec(Problem, description=WHY[status], media_type=PROBLEM_MEDIA_TYPE, generate_examples=False)
        for status in statuses
    }


# The groups handlers combine: every /v1 route is rate limited, a JSON body can be
# malformed, too large, of the wrong type or invalid, and a write can find the disk full.
LIMITED = (429,)
AUTHENTICATED = (401, 429)
BODY = (400, 413, 415, 422)
WRITE = (503,)


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
    return ProblemDetailsException(
        status_code=status,
        title=HTTPStatus(status).phrase,
        detail=exc.detail if exc.detail != HTTPStatus(status).phrase else "",
        headers=dict(exc.headers or {}),
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


DOMAIN_STATUS = {
    NotFound: 404, Conflict: 409, Invalid: 422, Forbidden: 403, Unauthenticated: 401, Limited: 429,
    TooLarge: 413, Unsupported: 415, Unavailable: 503,
}


def domain_to_problem(exc: DomainError) -> ProblemDetailsException:
    """A domain error as the problem document of its status, through `to_problem` like any other."""
    status = next(DOMAIN_STATUS[kind] for kind in type(exc).__mro__ if kind in DOMAIN_STATUS)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Limited | Unavailable) else None
    extra = {"errors": exc.errors} if exc.errors else None
    return to_problem(HTTPException(detail=exc.message, status_code=status, headers=headers, extra=extra))


def unexpected_to_problem(exc: Exception) -> ProblemDetailsException:
    # The traceback goes to the log, never to the client.
    log.error("unhandled error", exc_info=exc)
    ERRORS.labels("unhandled").inc()
    return ProblemDetailsException(status_code=500, title="Internal Server Error", detail="something went wrong")


# SQLite error code -> (metric kind, log line, detail for the client, Retry-After seconds).
STORAGE_TROUBLE = {
    sqlite3.SQLITE_FULL: (
        "storage_full", "database or disk is full: a write was refused",
        "the server's storage is full, so nothing was saved; try again later", "60",
    ),
    sqlite3.SQLITE_BUSY: (
        "storage_busy", "database is locked past the busy timeout: a request was refused",
        "the database is busy, so nothing was saved; try again", "1",
    ),
}


def storage_to_problem(exc: sqlite3.Error) -> ProblemDetailsException:
    """A full disk or a lock held too long is the service's trouble, not a bug: 503, retry later.

    Database.write has rolled the transaction back, so nothing half-written is kept.
    """
    trouble = STORAGE_TROUBLE.get(getattr(exc, "sqlite_errorcode", None))
    if trouble is None:
        return unexpected_to_problem(exc)
    kind, message, detail, retry_after = trouble
    log.error(message)
    ERRORS.labels(kind).inc()
    return ProblemDetailsException(
        status_code=503, title="Service Unavailable", detail=detail, headers={"Retry-After": retry_after}
    )


problem_details = ProblemDetailsPlugin(
    ProblemDetailsConfig(
        exception_to_problem_detail_map={
            HTTPException: to_problem,
            DomainError: domain_to_problem,
            sqlite3.Error: storage_to_problem,
            Exception: unexpected_to_problem,
        },
    )
)
