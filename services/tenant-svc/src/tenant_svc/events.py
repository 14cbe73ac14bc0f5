"""tenant-svc's event tables: which reaction (``reactions.py``) each consumed type gets.

``onboarding.events``: OnboardingCompleted → activate a pending tenant;
InvitationAccepted → add the member. ``usage.alerts``: QuotaExceeded → the
tenant's quota policy. Kit skips the types a table does not name and claims
each handled event in the inbox in the transaction of its effect, so a
redelivery changes nothing (``stellara_kit.handlers``).
"""

from __future__ import annotations

from functools import partial

from stellara_contracts import topics
from stellara_contracts.events import (
    InvitationAcceptedEvent,
    OnboardingCompletedEvent,
    QuotaExceededEvent,
)
from stellara_kit.runtime import ServiceRuntime
from tenant_svc import reactions
from tenant_svc.deps import TenantParts


def register(runtime: ServiceRuntime, tenancy: TenantParts) -> None:
    """Subscribe this service's event tables on the runtime's broker."""
    sink, settings = tenancy.sink, tenancy.settings
    runtime.subscribe_table(
        topics.ONBOARDING_EVENTS,
        {
            OnboardingCompletedEvent: partial(
                reactions.onboarding_completed, sink=sink, settings=settings
            ),
            InvitationAcceptedEvent: partial(reactions.invitation_accepted, sink=sink),
        },
    )
    runtime.subscribe_table(
        topics.USAGE_ALERTS,
        {
            QuotaExceededEvent: partial(
                reactions.quota_exceeded, sink=sink, settings=settings, catalogue=tenancy.catalogue
            ),
        },
    )
