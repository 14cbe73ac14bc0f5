"""All SQL on a tenant's configuration and its history (tables under row-level security)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from stellara_kit.locks import advisory_xact_lock, with_row_lock
from tenant_svc.config.catalogue import ConfigKey
from tenant_svc.models import ConfigEntry, ConfigHistory


async def serialise_writes(session: AsyncSession, tenant_id: UUID) -> None:
    """Wait for, then hold until the transaction ends, the tenant's configuration write turn.

    Row locks cannot do it: two first writes of a key find no row to lock. Taking the
    turn again in the same transaction is free.
    """
    await advisory_xact_lock(session, f"tenant-config:{tenant_id}")


async def entries(
    session: AsyncSession, tenant_id: UUID, *, category: str | None = None
) -> list[ConfigEntry]:
    statement = select(ConfigEntry).where(ConfigEntry.tenant_id == tenant_id)
    if category is not None:
        statement = statement.where(ConfigEntry.category == category)
    statement = statement.order_by(ConfigEntry.category, ConfigEntry.key)
    statement = statement.execution_options(populate_existing=True)
    return list((await session.execute(statement)).scalars())


async def locked_entries(
    session: AsyncSession, tenant_id: UUID, names: Iterable[ConfigKey]
) -> dict[ConfigKey, ConfigEntry]:
    """The current rows of ``names``, locked until the transaction ends."""
    wanted = list(names)
    if not wanted:
        return {}
    statement = (
        select(ConfigEntry)
        .where(
            ConfigEntry.tenant_id == tenant_id,
            tuple_(ConfigEntry.category, ConfigEntry.key).in_(wanted),
        )
        .order_by(ConfigEntry.category, ConfigEntry.key)
        .execution_options(populate_existing=True)
    )
    statement = with_row_lock(statement, "update")
    return {(e.category, e.key): e for e in (await session.execute(statement)).scalars()}


async def last_versions(
    session: AsyncSession, tenant_id: UUID, names: Iterable[ConfigKey]
) -> dict[ConfigKey, int]:
    """The newest history version of each key (a deleted key keeps counting)."""
    wanted = list(names)
    if not wanted:
        return {}
    statement = (
        select(ConfigHistory.category, ConfigHistory.key, func.max(ConfigHistory.version))
        .where(
            ConfigHistory.tenant_id == tenant_id,
            tuple_(ConfigHistory.category, ConfigHistory.key).in_(wanted),
        )
        .group_by(ConfigHistory.category, ConfigHistory.key)
    )
    return {(c, k): int(v) for c, k, v in (await session.execute(statement)).all()}


async def upsert(
    session: AsyncSession,
    tenant_id: UUID,
    name: ConfigKey,
    *,
    value: Any,
    version: int,
    at: datetime,
    by: str | None,
) -> None:
    row = {
        "tenant_id": tenant_id,
        "category": name[0],
        "key": name[1],
        "value": value,
        "version": version,
        "updated_at": at,
        "updated_by": by,
    }
    statement = insert(ConfigEntry).values(**row)
    statement = statement.on_conflict_do_update(
        index_elements=[ConfigEntry.tenant_id, ConfigEntry.category, ConfigEntry.key],
        set_={
            "value": statement.excluded.value,
            "version": version,
            "updated_at": at,
            "updated_by": by,
        },
    )
    await session.execute(statement)


async def remove(session: AsyncSession, tenant_id: UUID, name: ConfigKey) -> None:
    await session.execute(
        delete(ConfigEntry).where(
            ConfigEntry.tenant_id == tenant_id,
            ConfigEntry.category == name[0],
            ConfigEntry.key == name[1],
        )
    )


async def add_history(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.add_all([ConfigHistory(**row) for row in rows])
        await session.flush()


async def history_page(
    session: AsyncSession,
    tenant_id: UUID,
    *,
    category: str | None,
    key: str | None,
    before_id: int | None,
    limit: int,
) -> list[ConfigHistory]:
    """Newest change first."""
    statement = select(ConfigHistory).where(ConfigHistory.tenant_id == tenant_id)
    if category is not None:
        statement = statement.where(ConfigHistory.category == category)
    if key is not None:
        statement = statement.where(ConfigHistory.key == key)
    if before_id is not None:
        statement = statement.where(ConfigHistory.id < before_id)
    statement = statement.order_by(ConfigHistory.id.desc()).limit(limit)
    return list((await session.execute(statement)).scalars())


async def history_version(
    session: AsyncSession, tenant_id: UUID, name: ConfigKey, version: int
) -> ConfigHistory | None:
    statement = select(ConfigHistory).where(
        ConfigHistory.tenant_id == tenant_id,
        ConfigHistory.category == name[0],
        ConfigHistory.key == name[1],
        ConfigHistory.version == version,
    )
    return (await session.execute(statement)).scalar_one_or_none()
