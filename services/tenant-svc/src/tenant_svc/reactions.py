"""What tenant-svc does when other services report something about a tenant.

Each reaction is ``reaction(session, event, *, parts…)``, named in the event
table of ``events.py``; it runs in the transaction that claimed the event in the inbox,
and records what it did in ``tenant_received_events`` (visible at
``GET /tenants/{id}/received-events``) — also when it did nothing.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts import CloudEvent
from stellara_contracts.events import (
    InvitationAccepted,
    OnboardingCompleted,
    QuotaExceeded,
    TenantStatus,
)
from stellara_kit.outbox import EventSink
from tenant_svc.config import service as config_service
from tenant_svc.config.catalogue import ConfigCatalogue
from tenant_svc.errors import ConfigKeyNotFound, DomainError
from tenant_svc.members import service as members_service
from tenant_svc.settings import Settings
from tenant_svc.tenants import repository as tenants_repo
from tenant_svc.tenants import service as tenants_service

log = logging.getLogger(__name__)


async def record(
    session: AsyncSession, event: CloudEvent, tenant_id: UUID, outcome: str, **detail: Any
) -> None:
    await tenants_repo.record_received_event(
        session,
        tenant_id=tenant_id,
        event_id=event.id,
        type=event.type,
        outcome=outcome,
        detail=detail,
    )
    log.info("%s for tenant %s: %s %s", event.type, tenant_id, outcome, detail or "")


async def onboarding_completed(
    session: AsyncSession, event: CloudEvent, *, sink: EventSink, settings: Settings
) -> str:
    """Auto-activation: a ``pending`` tenant becomes active; any other status is left alone."""
    data: OnboardingCompleted = event.data
    tenant = await tenants_repo.get(session, data.tenant_id, lock="update")
    if tenant is None:
        outcome = "ignored: unknown tenant"
    elif tenant.status == TenantStatus.PENDING:
        await tenants_service.transition(session, sink, settings, tenant, TenantStatus.ACTIVE)
        outcome = "activated"
    else:
        outcome = f"ignored: tenant is {tenant.status}"
    await record(session, event, data.tenant_id, outcome, workflow_id=str(data.workflow_id))
    return outcome


async def invitation_accepted(session: AsyncSession, event: CloudEvent, *, sink: EventSink) -> str:
    """The invited user becomes a member with the invited role."""
    data: InvitationAccepted = event.data
    tenant = await tenants_repo.get(session, data.tenant_id, lock="share")
    detail = {"user_id": data.user_id, "email": data.email, "role": str(data.role)}
    if tenant is None:
        outcome = "ignored: unknown tenant"
    elif tenant.status == TenantStatus.DELETED:
        outcome = "ignored: tenant is deleted"
    else:
        try:
            _, changed = await members_service.accept_invitation(
                session, sink, tenant, user_id=data.user_id, email=data.email, role=data.role
            )
            outcome = "member added" if changed else "ignored: already a member with that role"
        except DomainError as exc:  # a rule refused it: retrying would not help
            outcome = f"refused: {exc.detail}"
    await record(session, event, data.tenant_id, outcome, **detail)
    return outcome


async def _hard_limit_action(
    session: AsyncSession, catalogue: ConfigCatalogue, tenant_id: UUID
) -> Any:
    try:
        name = ("billing", "hard_limit_action")
        return (await config_service.read_value(session, catalogue, tenant_id, name)).value
    except ConfigKeyNotFound:  # no tenant value and no platform default
        return None


async def quota_exceeded(
    session: AsyncSession,
    event: CloudEvent,
    *,
    sink: EventSink,
    settings: Settings,
    catalogue: ConfigCatalogue,
) -> str:
    """Suspend the tenant when its ``billing.hard_limit_action`` says so (hard limits only)."""
    data: QuotaExceeded = event.data
    tenant = await tenants_repo.get(session, data.tenant_id, lock="update")
    detail = {
        "metric": data.metric,
        "limit": data.limit,
        "value": data.value,
        "limit_kind": data.limit_kind,
        "period_start": data.period_start.isoformat(),
    }
    if tenant is None:
        outcome = "ignored: unknown tenant"
    else:
        action = await _hard_limit_action(session, catalogue, tenant.id)
        detail["hard_limit_action"] = action
        if action != "suspend":
            outcome = "recorded: hard_limit_action is not suspend"
        elif data.limit_kind != "hard":
            outcome = "recorded: soft limit"
        elif tenant.status != TenantStatus.ACTIVE:
            outcome = f"recorded: tenant is {tenant.status}"
        else:
            reason = (
                f"Quota exceeded: {data.metric} reached {data.value:g} of {data.limit:g} "
                f"on plan {data.plan} (period {data.period_start} to {data.period_end})."
            )
            await tenants_service.transition(
                session, sink, settings, tenant, TenantStatus.SUSPENDED, reason=reason
            )
            outcome = "suspended"
    await record(session, event, data.tenant_id, outcome, **detail)
    return outcome
