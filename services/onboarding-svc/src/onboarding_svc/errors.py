"""Domain errors of onboarding-svc; ``api.py`` maps each to a problem response in one place."""

from __future__ import annotations

from typing import Any


class OnboardingError(Exception):
    """An error a caller can act on; ``facts`` become problem extension members."""

    def __init__(self, detail: str, **facts: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.facts = facts


# ------------------------------------------------------------------ tenants and workflows
class TenantUnknown(OnboardingError):
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


class InvitationEmailMismatch(OnboardingError):
    """The invitation was sent to another address than the accepting user's."""
