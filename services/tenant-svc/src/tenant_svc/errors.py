"""Domain errors of tenant-svc, and the one table that makes them problem responses.

Services raise these with the facts a caller can act on (as keyword
``extensions``, which land in the problem body); :data:`PROBLEMS` maps each
class to its status, slug and title (:mod:`stellara_kit.errors`).
"""

from __future__ import annotations

from stellara_kit.errors import BadCursor as BadCursor
from stellara_kit.errors import DomainError as DomainError
from stellara_kit.errors import ProblemType
from stellara_kit.errors import TenantNotFound as TenantNotFound


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


class IdempotencyMismatch(DomainError):
    """The same ``Idempotency-Key`` came with a different request."""


class BadIdempotencyKey(DomainError):
    pass


#: domain error → (status, slug, title); the one mapping of the service
PROBLEMS: dict[type[DomainError], ProblemType] = {
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
    BadIdempotencyKey: (400, "bad-idempotency-key", "Bad Idempotency-Key"),
}
