"""All SQL on ``tenant_members`` (under row-level security)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from stellara_kit.locks import RowLock, with_row_lock
from tenant_svc.models import Member


async def get(
    session: AsyncSession, tenant_id: UUID, user_id: str, *, lock: RowLock = None
) -> Member | None:
    statement = select(Member).where(Member.tenant_id == tenant_id, Member.user_id == user_id)
    statement = with_row_lock(statement, lock)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_by_email(
    session: AsyncSession, tenant_id: UUID, email: str, *, lock: RowLock = None
) -> Member | None:
    statement = select(Member).where(
        Member.tenant_id == tenant_id, func.lower(Member.email) == email.lower()
    )
    statement = with_row_lock(statement, lock)
    return (await session.execute(statement)).scalar_one_or_none()


async def existing(
    session: AsyncSession, tenant_id: UUID, user_ids: list[str], emails: list[str]
) -> tuple[set[str], set[str]]:
    """Which of ``user_ids`` and (lower-cased) ``emails`` are members already."""
    statement = select(Member.user_id, func.lower(Member.email)).where(
        Member.tenant_id == tenant_id,
        (Member.user_id.in_(user_ids)) | (func.lower(Member.email).in_(emails)),
    )
    ids: set[str] = set()
    mails: set[str] = set()
    for user_id, email in (await session.execute(statement)).all():
        ids.add(user_id)
        if email:
            mails.add(email)
    return ids, mails


async def locked_admins(session: AsyncSession, tenant_id: UUID) -> list[Member]:
    """The tenant's admins, locked: two removals cannot both take the last one away."""
    statement = (
        select(Member)
        .where(Member.tenant_id == tenant_id, Member.role == "tenant_admin")
        .order_by(Member.user_id)
    )
    statement = with_row_lock(statement, "update")
    return list((await session.execute(statement)).scalars())


async def add(session: AsyncSession, member: Member) -> Member:
    session.add(member)
    await session.flush()
    return member


async def add_if_new(session: AsyncSession, member: dict[str, Any]) -> Member | None:
    """Insert a member unless its user id or email is taken; the new row, or None."""
    statement = insert(Member).values(member).on_conflict_do_nothing().returning(Member)
    return (await session.execute(statement)).scalar_one_or_none()


async def add_new(session: AsyncSession, members: list[dict[str, Any]]) -> set[str]:
    """Insert members unless their user id or email is taken; the user ids inserted."""
    if not members:
        return set()
    statement = insert(Member).values(members).on_conflict_do_nothing().returning(Member.user_id)
    return set((await session.execute(statement)).scalars())


async def remove(session: AsyncSession, member: Member) -> None:
    await session.delete(member)
    await session.flush()


async def list_page(
    session: AsyncSession,
    tenant_id: UUID,
    *,
    role: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Member]:
    statement = select(Member).where(Member.tenant_id == tenant_id)
    if role is not None:
        statement = statement.where(Member.role == role)
    if after is not None:
        statement = statement.where(tuple_(Member.created_at, Member.user_id) > tuple_(*after))
    statement = statement.order_by(Member.created_at, Member.user_id).limit(limit)
    return list((await session.execute(statement)).scalars())
