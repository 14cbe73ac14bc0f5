"""onboarding-svc Kafka subscribers (thin: decode, open the transaction, call the service).

Consumes ``tenant.events``: ``TenantCreated`` records the tenant and starts its
onboarding, ``TenantDeleted`` cancels a running onboarding and revokes the
tenant's open invitations; plan and status changes keep the copy current.
Publishing happens only through the outbox (see ``service.py``).
"""

from __future__ import annotations

from onboarding_svc.invitations import Invitations
from onboarding_svc.service import SYSTEM_ACTOR, Onboarding
from stellara_contracts import CloudEvent, topics
from stellara_contracts.envelope import UnknownEvent
from stellara_contracts.events import (
    TenantActivatedEvent,
    TenantCreatedEvent,
    TenantDeletedEvent,
    TenantPlanChangedEvent,
    TenantSuspendedEvent,
    TenantUpdatedEvent,
)
from stellara_kit.runtime import ServiceRuntime

HANDLED = (
    TenantCreatedEvent,
    TenantDeletedEvent,
    TenantPlanChangedEvent,
    TenantActivatedEvent,
    TenantSuspendedEvent,
    TenantUpdatedEvent,
)


class TenantEventHandler:
    """Applies one ``tenant.events`` record, once (inbox), in one transaction."""

    def __init__(
        self, runtime: ServiceRuntime, onboarding: Onboarding, invitations: Invitations
    ) -> None:
        assert runtime.db is not None and runtime.inbox is not None
        self.db = runtime.db
        self.inbox = runtime.inbox
        self.onboarding = onboarding
        self.invitations = invitations

    async def __call__(self, event: CloudEvent) -> None:
        if isinstance(event, UnknownEvent) or not isinstance(event, HANDLED):
            return
        async with self.db.transaction(event.data.tenant_id) as session:
            if not await self.inbox.claim(session, event.id):
                return
            await self.onboarding.apply_tenant_event(session, event)
            if isinstance(event, TenantDeletedEvent):
                await self.invitations.revoke_all_open(
                    session, event.data.tenant_id, by=SYSTEM_ACTOR
                )


def register(runtime: ServiceRuntime, handler: TenantEventHandler) -> None:
    """Subscribe this service's handlers on the runtime's broker."""
    runtime.subscribe(topics.TENANT_EVENTS, handler)
