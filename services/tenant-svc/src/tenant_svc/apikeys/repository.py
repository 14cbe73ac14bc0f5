"""All SQL on ``tenant_api_keys`` (under row-level security)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from stellara_kit.locks import RowLock, with_row_lock
from tenant_svc.models import ApiKey


async def add(session: AsyncSession, key: ApiKey) -> ApiKey:
    session.add(key)
    await session.flush()
    return key


async def get(
    session: AsyncSession, tenant_id: UUID, key_id: UUID, *, lock: RowLock = None
) -> ApiKey | None:
    statement = select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id)
    statement = with_row_lock(statement, lock)
    return (await session.execute(statement)).scalar_one_or_none()


async def by_lookup_id(session: AsyncSession, lookup_id: str) -> ApiKey | None:
    """Across tenants: the caller runs in a declared system transaction."""
    statement = select(ApiKey).where(ApiKey.lookup_id == lookup_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def list_page(
    session: AsyncSession,
    tenant_id: UUID,
    *,
    include_revoked: bool,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[ApiKey]:
    statement = select(ApiKey).where(ApiKey.tenant_id == tenant_id)
    if not include_revoked:
        statement = statement.where(ApiKey.revoked_at.is_(None))
    if after is not None:
        statement = statement.where(tuple_(ApiKey.created_at, ApiKey.id) > tuple_(*after))
    statement = statement.order_by(ApiKey.created_at, ApiKey.id).limit(limit)
    return list((await session.execute(statement)).scalars())
