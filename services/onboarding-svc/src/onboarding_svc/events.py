"""onboarding-svc's event table for ``tenant.events``.

``TenantCreated`` records the tenant and starts its onboarding;
``TenantDeleted`` cancels a running onboarding and revokes the tenant's open
invitations; plan and status changes keep the copy current. Kit skips the other
types and claims each handled event in the inbox in the transaction of its
effect (``stellara_kit.handlers``). Publishing happens only through the outbox
(see ``service.py``).
"""

from __future__ import annotations

from onboarding_svc.invitations import Invitations
from onboarding_svc.service import Onboarding
from stellara_contracts import topics
from stellara_contracts.events import (
    TenantActivatedEvent,
    TenantCreatedEvent,
    TenantDeletedEvent,
    TenantPlanChangedEvent,
    TenantSuspendedEvent,
    TenantUpdatedEvent,
)
from stellara_kit.consumer import EventHandler
from stellara_kit.runtime import ServiceRuntime


def register(
    runtime: ServiceRuntime, onboarding: Onboarding, invitations: Invitations
) -> EventHandler:
    """Subscribe this service's event table; the handler the subscriber calls."""
    return runtime.subscribe_table(
        topics.TENANT_EVENTS,
        {
            TenantCreatedEvent: onboarding.apply_tenant_event,
            TenantDeletedEvent: invitations.tenant_deleted,
            TenantPlanChangedEvent: onboarding.apply_tenant_event,
            TenantActivatedEvent: onboarding.apply_tenant_event,
            TenantSuspendedEvent: onboarding.apply_tenant_event,
            TenantUpdatedEvent: onboarding.apply_tenant_event,
        },
    )
