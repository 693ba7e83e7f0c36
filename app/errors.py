"""What domain and storage code raises when an operation cannot be carried out.

No HTTP here: app/api/problems.py turns these into problem documents at the API's edge, and a
page handler can turn them into a message next to the field.
"""

from __future__ import annotations


class DomainError(Exception):
    """An operation refused; `errors` names the offending fields ({field, message[, source]}),
    as the API's problem document shows them. `code`, when given, names what was refused for
    the pages that say it in their own words: they read the code, never the message."""

    def __init__(self, message: str, errors: list[dict] | None = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors
        self.code = code


class NotFound(DomainError):
    """No such thing, or it belongs to someone else."""


class Conflict(DomainError):
    """Conflicts with what is stored (a taken email or slug, the last admin)."""


class Invalid(DomainError):
    """Well-formed, but the values cannot be carried out as asked."""


class Forbidden(DomainError):
    """Not allowed for this caller or on this service."""


class Unauthenticated(DomainError):
    """The credentials (password, refresh token) are wrong, expired or used."""


class Limited(DomainError):
    """Over a limit; may be tried again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooLarge(DomainError):
    """Larger than the service takes (an upload's bytes or pixels)."""


class Unsupported(DomainError):
    """Of a kind the service does not take (an image format)."""


class Unavailable(DomainError):
    """The service cannot carry it out now (a primary that lost its role to another); try
    again after `retry_after` seconds, when the client's requests reach the new one."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
