"""Typed domain errors raised by the services.

Each carries a machine-readable ``code`` (the ERP contract's vocabulary), the HTTP status
it maps to, a human ``message`` and optional per-field messages. The API maps them in one
exception handler; operator screens show ``message``.
"""

from __future__ import annotations


class DomainError(Exception):
    code = "invalid"
    http_status = 400

    def __init__(self, message: str, *, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}

    def as_dict(self) -> dict:
        return {"code": self.code, "detail": self.message, "errors": self.errors}


class ValidationFailed(DomainError):
    """The input is not acceptable; nothing was changed."""

    @classmethod
    def field(cls, field: str, message: str) -> ValidationFailed:
        return cls(message, errors={field: [message]})


class UnknownReference(ValidationFailed):
    """A reference by code names nothing (``unknown_product`` and friends)."""

    def __init__(self, kind: str, value: str, *, field: str | None = None) -> None:
        message = f"Unknown {kind.replace('_', ' ')} {value!r}."
        super().__init__(message, errors={field or kind: [message]})
        self.code = f"unknown_{kind}"


class InvalidTransition(DomainError):
    """The state machine does not allow this change from the current state."""

    code = "invalid_transition"
    http_status = 409


class Conflict(DomainError):
    """The change contradicts what already happened (e.g. quantity below produced)."""

    code = "conflict"
    http_status = 409


class AlreadyExists(Conflict):
    """A record with this key exists (another writer may have created it a moment ago)."""


class StaleObject(Conflict):
    """The caller acted on a version that somebody else has changed meanwhile."""


class NotFound(DomainError):
    code = "not_found"
    http_status = 404
