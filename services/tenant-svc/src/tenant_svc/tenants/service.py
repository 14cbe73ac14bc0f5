"""Tenants: creation, updates with optimistic concurrency, the lifecycle state machine.

Every change bumps the tenant's ``version``, adds its domain event(s) to
``tenant.events`` and the full ``TenantSnapshot`` to the compacted
``tenant.state`` — in the transaction of the change, through the outbox.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts.events import (
    EventData,
    TenantActivated,
    TenantCreated,
    TenantDeleted,
    TenantPlanChanged,
    TenantSnapshot,
    TenantStatus,
    TenantSuspended,
    TenantUpdated,
)
from stellara_kit.outbox import EventSink
from tenant_svc.errors import (
    InvalidTenantInput,
    InvalidTransition,
    SlugUnavailable,
    TenantNotFound,
    VersionMismatch,
)
from tenant_svc.errors import (
    TenantDeleted as TenantIsDeleted,
)
from tenant_svc.models import Tenant
from tenant_svc.settings import SLUG_PATTERN, Settings
from tenant_svc.tenants import repository

#: the lifecycle: status → statuses it may move to
TRANSITIONS: dict[TenantStatus, tuple[TenantStatus, ...]] = {
    TenantStatus.PENDING: (TenantStatus.ACTIVE, TenantStatus.DELETED),
    TenantStatus.ACTIVE: (TenantStatus.SUSPENDED, TenantStatus.DELETED),
    TenantStatus.SUSPENDED: (TenantStatus.ACTIVE, TenantStatus.DELETED),
    TenantStatus.DELETED: (),
}


def allowed_transitions(status: str) -> list[str]:
    return [str(s) for s in TRANSITIONS[TenantStatus(status)]]


def snapshot_of(tenant: Tenant) -> TenantSnapshot:
    return TenantSnapshot(
        tenant_id=tenant.id,
        slug=tenant.slug,
        name=tenant.name,
        plan=tenant.plan,
        status=TenantStatus(tenant.status),
        status_reason=tenant.status_reason,
        metadata=tenant.attributes,
        version=tenant.version,
        created_at=tenant.created_at,
        updated_at=tenant.updated_at,
        deleted_at=tenant.deleted_at,
    )


def check_slug(slug: str, settings: Settings) -> None:
    if not SLUG_PATTERN.match(slug):
        raise InvalidTenantInput(
            "A slug is a DNS label: 3 to 63 lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit.",
            field="slug",
        )
    if slug in settings.reserved_slugs:
        raise InvalidTenantInput(f"The slug {slug!r} is reserved; choose another.", field="slug")
    if _looks_like_an_id(slug):
        raise InvalidTenantInput(
            "A slug cannot look like a tenant id (a UUID): `/tenants/{id}` would read it as one.",
            field="slug",
        )


def _article(word: str) -> str:
    return "An" if word[:1] in "aeiou" else "A"


def _looks_like_an_id(slug: str) -> bool:
    try:
        UUID(slug)
    except ValueError:
        return False
    return True


def check_plan(plan: str, settings: Settings) -> None:
    if plan not in settings.plans:
        raise InvalidTenantInput(
            f"Unknown plan {plan!r}.", field="plan", allowed_plans=list(settings.plans)
        )


def check_metadata(metadata: dict[str, Any], settings: Settings) -> None:
    size = len(json.dumps(metadata, separators=(",", ":")).encode())
    if size > settings.metadata_max_bytes:
        raise InvalidTenantInput(
            f"metadata is {size} bytes of JSON; at most {settings.metadata_max_bytes} are allowed.",
            field="metadata",
        )


async def get_tenant(session: AsyncSession, tenant_id: UUID) -> Tenant:
    tenant = await repository.get(session, tenant_id)
    if tenant is None:
        raise TenantNotFound("No such tenant.")
    return tenant


async def create_tenant(
    session: AsyncSession,
    sink: EventSink,
    settings: Settings,
    *,
    name: str,
    slug: str,
    plan: str | None = None,
    metadata: dict[str, Any] | None = None,
    tenant_id: UUID | None = None,
    status: TenantStatus = TenantStatus.PENDING,
) -> Tenant:
    """Create a tenant (``pending`` unless told otherwise); a taken slug is a conflict."""
    plan = plan or settings.default_plan
    metadata = metadata or {}
    check_slug(slug, settings)
    check_plan(plan, settings)
    check_metadata(metadata, settings)
    now = datetime.now(UTC)
    tenant = await repository.insert_new(
        session,
        {
            "id": tenant_id or uuid4(),
            "slug": slug,
            "name": name,
            "plan": plan,
            "status": str(status),
            "metadata": metadata,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        },
    )
    if tenant is None:
        raise SlugUnavailable(
            f"The slug {slug!r} is taken (slugs of deleted tenants stay reserved).", slug=slug
        )
    created = TenantCreated(
        tenant_id=tenant.id,
        slug=tenant.slug,
        name=tenant.name,
        plan=tenant.plan,
        status=TenantStatus(tenant.status),
        metadata=tenant.attributes,
        created_at=tenant.created_at,
    )
    await sink.publish(session, created, snapshot_of(tenant))
    return tenant


async def ensure_default_tenant(
    session: AsyncSession, sink: EventSink, settings: Settings
) -> Tenant | None:
    """The default tenant for single-tenant callers: created once, active. None if it existed."""
    if await repository.get_by_slug(session, settings.default_tenant_slug) is not None:
        return None
    try:
        return await create_tenant(
            session,
            sink,
            settings,
            name=settings.default_tenant_name,
            slug=settings.default_tenant_slug,
            plan=settings.default_tenant_plan,
            status=TenantStatus.ACTIVE,
        )
    except SlugUnavailable:  # another replica created it at the same moment
        return None


def _check_version(tenant: Tenant, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != tenant.version:
        raise VersionMismatch(
            f"The tenant is at version {tenant.version}, not {expected_version}; "
            "read it again and retry with its ETag.",
            current_version=tenant.version,
        )


def _bump(tenant: Tenant) -> None:
    tenant.version += 1
    tenant.updated_at = datetime.now(UTC)


async def update_tenant(
    session: AsyncSession,
    sink: EventSink,
    settings: Settings,
    tenant: Tenant,
    *,
    name: str | None = None,
    plan: str | None = None,
    metadata: dict[str, Any] | None = None,
    expected_version: int | None = None,
) -> Tenant:
    """Change name, plan and/or metadata; ``tenant`` must be locked for update."""
    _check_version(tenant, expected_version)
    if tenant.status == TenantStatus.DELETED:
        raise TenantIsDeleted("A deleted tenant cannot be changed.")
    changes: dict[str, Any] = {}
    if name is not None and name != tenant.name:
        changes["name"] = name
    if metadata is not None:
        check_metadata(metadata, settings)
        if metadata != tenant.attributes:
            changes["metadata"] = metadata
    old_plan = tenant.plan
    if plan is not None:
        check_plan(plan, settings)
    plan_changed = plan is not None and plan != old_plan
    if not changes and not plan_changed:
        return tenant

    if "name" in changes:
        tenant.name = changes["name"]
    if "metadata" in changes:
        tenant.attributes = changes["metadata"]
    if plan_changed:
        assert plan is not None
        tenant.plan = plan
    _bump(tenant)
    await session.flush()
    events: list[EventData] = []
    if changes:
        events.append(TenantUpdated(tenant_id=tenant.id, changes=changes, version=tenant.version))
    if plan_changed:
        assert plan is not None
        events.append(
            TenantPlanChanged(
                tenant_id=tenant.id, old_plan=old_plan, new_plan=plan, version=tenant.version
            )
        )
    await sink.publish(session, *events, snapshot_of(tenant))
    return tenant


async def transition(
    session: AsyncSession,
    sink: EventSink,
    settings: Settings,
    tenant: Tenant,
    target: TenantStatus,
    *,
    reason: str | None = None,
    expected_version: int | None = None,
) -> Tenant:
    """Move ``tenant`` (locked for update) along the lifecycle, or refuse with what is allowed."""
    _check_version(tenant, expected_version)
    current = TenantStatus(tenant.status)
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(
            f"{_article(str(current))} {current} tenant cannot become {target}.",
            current_status=str(current),
            requested_status=str(target),
            allowed_transitions=allowed_transitions(current),
        )
    if target == TenantStatus.DELETED and tenant.slug == settings.default_tenant_slug:
        raise InvalidTransition(
            "The default tenant serves single-tenant callers and cannot be deleted.",
            current_status=str(current),
            requested_status=str(target),
            allowed_transitions=[s for s in allowed_transitions(current) if s != "deleted"],
        )
    tenant.status = str(target)
    tenant.status_reason = (
        reason if target in (TenantStatus.SUSPENDED, TenantStatus.DELETED) else None
    )
    if target == TenantStatus.DELETED:
        tenant.deleted_at = datetime.now(UTC)
    _bump(tenant)
    await session.flush()
    event: EventData
    if target == TenantStatus.ACTIVE:
        event = TenantActivated(
            tenant_id=tenant.id, previous_status=current, version=tenant.version
        )
    elif target == TenantStatus.SUSPENDED:
        event = TenantSuspended(tenant_id=tenant.id, reason=reason or "", version=tenant.version)
    else:
        event = TenantDeleted(tenant_id=tenant.id, slug=tenant.slug, version=tenant.version)
    await sink.publish(session, event, snapshot_of(tenant))
    return tenant
