"""Domain errors of tenant-svc, and the one place they become problem responses.

Services raise these with the facts a caller can act on (as keyword
``extensions``, which land in the problem body); :func:`to_problem` maps each
class to its status, slug and title.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from stellara_kit.problems import Problem, problem_response


class DomainError(Exception):
    """A rule of the domain refused an operation."""

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class TenantNotFound(DomainError):
    pass


class SlugUnavailable(DomainError):
    """The slug is taken (also by a deleted tenant) or reserved."""


class InvalidTenantInput(DomainError):
    """A name, slug, plan or metadata the rules refuse."""


class InvalidTransition(DomainError):
    """The lifecycle does not allow this move from the current status."""


class TenantDeleted(DomainError):
    """A deleted tenant does not change any more."""


class VersionMismatch(DomainError):
    """``If-Match`` named a version that is no longer current."""


class ConfigKeyNotFound(DomainError):
    pass


class ConfigVersionNotFound(DomainError):
    pass


class InvalidConfig(DomainError):
    """One or more configuration values were refused; ``errors`` lists each key and reason."""


class MemberNotFound(DomainError):
    pass


class MemberExists(DomainError):
    pass


class LastAdmin(DomainError):
    """A tenant that has an admin keeps at least one."""


class InvalidMember(DomainError):
    pass


class ApiKeyNotFound(DomainError):
    pass


class InvalidApiKey(DomainError):
    """Scopes or expiry of a new API key the rules refuse."""


class BadCursor(DomainError):
    pass


class IdempotencyMismatch(DomainError):
    """The same ``Idempotency-Key`` came with a different request."""


class BadIdempotencyKey(DomainError):
    pass


#: domain error → (status, slug, title); the one mapping of the service
PROBLEMS: dict[type[DomainError], tuple[int, str, str]] = {
    TenantNotFound: (404, "tenant-not-found", "Tenant not found"),
    ConfigKeyNotFound: (404, "config-key-not-found", "Configuration key not found"),
    ConfigVersionNotFound: (404, "config-version-not-found", "Configuration version not found"),
    MemberNotFound: (404, "member-not-found", "Member not found"),
    ApiKeyNotFound: (404, "api-key-not-found", "API key not found"),
    SlugUnavailable: (409, "slug-unavailable", "Slug unavailable"),
    InvalidTransition: (409, "invalid-transition", "Invalid lifecycle transition"),
    TenantDeleted: (409, "tenant-deleted", "Tenant deleted"),
    MemberExists: (409, "member-exists", "Already a member"),
    LastAdmin: (409, "last-admin", "Last admin"),
    VersionMismatch: (412, "version-mismatch", "Precondition failed"),
    InvalidTenantInput: (422, "invalid-tenant", "Invalid tenant"),
    InvalidConfig: (422, "invalid-config", "Invalid configuration"),
    InvalidMember: (422, "invalid-member", "Invalid member"),
    InvalidApiKey: (422, "invalid-api-key", "Invalid API key request"),
    IdempotencyMismatch: (422, "idempotency-key-reused", "Idempotency key reused"),
    BadCursor: (400, "bad-cursor", "Bad cursor"),
    BadIdempotencyKey: (400, "bad-idempotency-key", "Bad Idempotency-Key"),
}


def to_problem(error: DomainError) -> Problem:
    for cls in type(error).__mro__:
        if cls in PROBLEMS:
            status, slug, title = PROBLEMS[cls]
            problem = Problem(error.detail, status=status, slug=slug, title=title)
            problem.extensions.update(error.extensions)  # may hold e.g. a tenant's `slug`
            return problem
    return Problem(error.detail, status=400)


def install_domain_error_handler(app: FastAPI) -> None:
    async def on_domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        return problem_response(to_problem(exc), request)

    app.add_exception_handler(DomainError, on_domain_error)
