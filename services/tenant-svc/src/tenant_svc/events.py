"""tenant-svc Kafka subscribers (thin: decode, open the transaction, claim, react).

Consumes ``onboarding.events`` (OnboardingCompleted → activate a pending
tenant; InvitationAccepted → add the member) and ``usage.alerts``
(QuotaExceeded → the tenant's quota policy). Other types, and types this
version does not know, are skipped. Each handled event is claimed in the
inbox in the transaction of its effect, so a redelivery changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts import CloudEvent, topics
from stellara_contracts.events import (
    InvitationAcceptedEvent,
    OnboardingCompletedEvent,
    QuotaExceededEvent,
)
from stellara_kit.runtime import ServiceRuntime
from tenant_svc import reactions
from tenant_svc.deps import TenantParts

log = logging.getLogger(__name__)

Reaction = Callable[[AsyncSession, CloudEvent], Awaitable[str]]


def register(runtime: ServiceRuntime, tenancy: TenantParts) -> None:
    """Subscribe this service's handlers on the runtime's broker."""
    inbox = runtime.inbox
    assert inbox is not None

    async def react(event: CloudEvent, reaction: Reaction) -> None:
        tenant_id = event.data.tenant_id
        async with tenancy.db.transaction(tenant_id) as session:
            if not await inbox.claim(session, event.id):
                log.info("event %s (%s) was handled before", event.id, event.type)
                return
            await reaction(session, event)

    async def on_onboarding_event(event: CloudEvent) -> None:
        """Onboarding completed → activate; invitation accepted → add the member."""
        if isinstance(event, OnboardingCompletedEvent):
            await react(
                event,
                lambda s, e: reactions.onboarding_completed(s, tenancy.sink, tenancy.settings, e),
            )
        elif isinstance(event, InvitationAcceptedEvent):
            await react(event, lambda s, e: reactions.invitation_accepted(s, tenancy.sink, e))

    async def on_usage_alert(event: CloudEvent) -> None:
        """Quota exceeded → suspend when the tenant's configuration says so."""
        if isinstance(event, QuotaExceededEvent):
            await react(
                event,
                lambda s, e: reactions.quota_exceeded(
                    s, tenancy.sink, tenancy.settings, tenancy.catalogue, e
                ),
            )

    runtime.subscribe(topics.ONBOARDING_EVENTS, on_onboarding_event)
    runtime.subscribe(topics.USAGE_ALERTS, on_usage_alert)
