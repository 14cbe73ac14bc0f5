"""Domain errors of onboarding-svc, and the one table that makes them problem responses.

Services raise these with the facts a caller can act on (keyword ``extensions``,
which land in the problem body); :data:`PROBLEMS` maps each class to its
status, slug and title (:mod:`stellara_kit.errors`).
"""

from __future__ import annotations

from stellara_kit.errors import DomainError, ProblemType, TenantNotFound


class OnboardingError(DomainError):
    """An error a caller can act on."""


# ------------------------------------------------------------------ tenants and workflows
class TenantUnknown(OnboardingError, TenantNotFound):
    """The tenant does not exist (or its TenantCreated has not arrived yet)."""


class TenantGone(OnboardingError):
    """The tenant was deleted."""


class OnboardingAlreadyStarted(OnboardingError):
    """The tenant's onboarding is running or finished."""


class OnboardingNotStarted(OnboardingError):
    """The tenant has no onboarding yet."""


class OnboardingNotRunning(OnboardingError):
    """The onboarding was cancelled or is complete, so its steps no longer change."""


class UnknownStep(OnboardingError):
    """The workflow has no step with that key."""


class StepBlocked(OnboardingError):
    """The step's dependencies are not done yet."""


class StepCompletesAutomatically(OnboardingError):
    """The step completes on an event and cannot be completed by hand."""


class StepNotSkippable(OnboardingError):
    """Only optional steps can be skipped."""


# ------------------------------------------------------------------ invitations
class InvitationNotFound(OnboardingError):
    """No such invitation in this tenant."""


class InvitationAlreadyOpen(OnboardingError):
    """The address already has an open invitation in this tenant."""


class InvitationClosed(OnboardingError):
    """The invitation was accepted, revoked or expired; it can no longer change."""


class InvitationTokenUnknown(OnboardingError):
    """No invitation has that token."""


class InvitationTokenExpired(OnboardingError):
    """The invitation passed its expiry."""


class InvitationTokenUsed(OnboardingError):
    """The invitation was already accepted."""


class InvitationTokenRevoked(OnboardingError):
    """The invitation was revoked."""


class InvitationEmailRequired(OnboardingError):
    """The accepting user's token carries no email address."""


class InvitationEmailUnverified(OnboardingError):
    """The accepting user's token says its email address is not verified."""


class InvitationUserIdUnsupported(OnboardingError):
    """The accepting user's id (``sub``) is not one a member can have."""


class InvitationEmailMismatch(OnboardingError):
    """The invitation was sent to another address than the accepting user's."""


#: domain error → (status, slug, title); the one mapping of the service
PROBLEMS: dict[type[DomainError], ProblemType] = {
    TenantGone: (409, "tenant-deleted", "Tenant deleted"),
    OnboardingAlreadyStarted: (
        409,
        "onboarding-already-started",
        "Onboarding already started",
    ),
    OnboardingNotStarted: (404, "onboarding-not-started", "Onboarding not started"),
    OnboardingNotRunning: (409, "onboarding-not-running", "Onboarding not running"),
    UnknownStep: (422, "unknown-step", "Unknown step"),
    StepBlocked: (409, "step-blocked", "Step waits for others"),
    StepCompletesAutomatically: (
        409,
        "step-completes-automatically",
        "Step completes by itself",
    ),
    StepNotSkippable: (422, "step-not-skippable", "Step cannot be skipped"),
    InvitationNotFound: (404, "invitation-not-found", "Invitation not found"),
    InvitationAlreadyOpen: (409, "invitation-already-open", "Invitation already open"),
    InvitationClosed: (409, "invitation-closed", "Invitation closed"),
    InvitationTokenUnknown: (404, "invitation-not-found", "Invitation not found"),
    InvitationTokenExpired: (410, "invitation-expired", "Invitation expired"),
    InvitationTokenUsed: (409, "invitation-already-accepted", "Invitation already accepted"),
    InvitationTokenRevoked: (409, "invitation-revoked", "Invitation revoked"),
    InvitationEmailRequired: (403, "invitation-email-required", "Email address needed"),
    InvitationUserIdUnsupported: (
        403,
        "invitation-user-id-unsupported",
        "User id not supported",
    ),
    InvitationEmailUnverified: (
        403,
        "invitation-email-unverified",
        "Email address not verified",
    ),
    InvitationEmailMismatch: (
        403,
        "invitation-email-mismatch",
        "Invitation for another address",
    ),
}
