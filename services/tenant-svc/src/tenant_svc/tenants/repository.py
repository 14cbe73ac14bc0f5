"""All SQL on ``tenants`` (platform-scoped: callers authorize in code)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from stellara_kit.locks import RowLock, with_row_lock
from tenant_svc.models import ReceivedEvent, Tenant


async def get(session: AsyncSession, tenant_id: UUID, *, lock: RowLock = None) -> Tenant | None:
    statement = with_row_lock(select(Tenant).where(Tenant.id == tenant_id), lock)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_by_slug(session: AsyncSession, slug: str, *, lock: RowLock = None) -> Tenant | None:
    statement = with_row_lock(select(Tenant).where(Tenant.slug == slug), lock)
    return (await session.execute(statement)).scalar_one_or_none()


async def insert_new(session: AsyncSession, values: dict[str, Any]) -> Tenant | None:
    """Insert a tenant unless its slug is taken; the new row, or None."""
    inserted = await session.execute(
        insert(Tenant)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Tenant.slug])
        .returning(Tenant)
    )
    return inserted.scalar_one_or_none()


async def list_page(
    session: AsyncSession,
    *,
    statuses: list[str] | None,
    plan: str | None,
    text: str | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[Tenant]:
    """Tenants in creation order (ties by id), ``limit`` of them after ``after``."""
    statement = select(Tenant)
    if statuses:
        statement = statement.where(Tenant.status.in_(statuses))
    else:
        statement = statement.where(Tenant.status != "deleted")
    if plan:
        statement = statement.where(Tenant.plan == plan)
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(
            or_(Tenant.name.ilike(pattern, escape="\\"), Tenant.slug.ilike(pattern, escape="\\"))
        )
    if after is not None:
        statement = statement.where(tuple_(Tenant.created_at, Tenant.id) > tuple_(*after))
    statement = statement.order_by(Tenant.created_at, Tenant.id).limit(limit)
    return list((await session.execute(statement)).scalars())


async def count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(Tenant))).scalar_one())


async def record_received_event(
    session: AsyncSession,
    *,
    tenant_id: UUID,
    event_id: UUID,
    type: str,
    outcome: str,
    detail: dict[str, Any],
) -> None:
    """Remember what the service did with another service's event (once per event)."""
    await session.execute(
        insert(ReceivedEvent)
        .values(tenant_id=tenant_id, event_id=event_id, type=type, outcome=outcome, detail=detail)
        .on_conflict_do_nothing()
    )


async def received_events(
    session: AsyncSession, tenant_id: UUID, *, before: tuple[datetime, UUID] | None, limit: int
) -> list[ReceivedEvent]:
    """What the service did with other services' events about a tenant, newest first."""
    statement = select(ReceivedEvent).where(ReceivedEvent.tenant_id == tenant_id)
    if before is not None:
        statement = statement.where(
            tuple_(ReceivedEvent.received_at, ReceivedEvent.event_id) < tuple_(*before)
        )
    statement = statement.order_by(
        ReceivedEvent.received_at.desc(), ReceivedEvent.event_id.desc()
    ).limit(limit)
    return list((await session.execute(statement)).scalars())
