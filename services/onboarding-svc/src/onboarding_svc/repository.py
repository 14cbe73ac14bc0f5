"""All SQL of onboarding-svc. Functions take the caller's session and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from onboarding_svc.models import (
    DeliveryState,
    Invitation,
    InvitationStatus,
    Step,
    Tenant,
    Workflow,
)
from stellara_kit.locks import RowLock, with_row_lock


# ------------------------------------------------------------------ tenants
async def get_tenant(
    session: AsyncSession, tenant_id: UUID, *, lock: RowLock = None
) -> Tenant | None:
    statement = select(Tenant).where(Tenant.tenant_id == tenant_id)
    statement = with_row_lock(statement, lock)
    return (await session.execute(statement)).scalar_one_or_none()


async def add(session: AsyncSession, *rows: object) -> None:
    """Insert new rows now, so constraint violations surface inside the caller's code."""
    session.add_all(rows)
    await session.flush()


# ------------------------------------------------------------------ workflows
async def get_workflow(
    session: AsyncSession, tenant_id: UUID, *, lock: RowLock = None
) -> Workflow | None:
    statement = select(Workflow).where(Workflow.tenant_id == tenant_id)
    statement = with_row_lock(statement, lock)
    return (await session.execute(statement)).scalar_one_or_none()


async def list_steps(session: AsyncSession, workflow_id: UUID) -> list[Step]:
    statement = select(Step).where(Step.workflow_id == workflow_id).order_by(Step.position)
    return list((await session.execute(statement)).scalars())


# ------------------------------------------------------------------ invitations
async def get_invitation(
    session: AsyncSession, tenant_id: UUID, invitation_id: UUID, *, lock: RowLock = None
) -> Invitation | None:
    statement = select(Invitation).where(
        Invitation.tenant_id == tenant_id, Invitation.id == invitation_id
    )
    statement = with_row_lock(statement, lock)
    return (await session.execute(statement)).scalar_one_or_none()


async def find_open_invitation(
    session: AsyncSession, tenant_id: UUID, email: str
) -> Invitation | None:
    statement = select(Invitation).where(
        Invitation.tenant_id == tenant_id,
        func.lower(Invitation.email) == email.lower(),
        Invitation.status == InvitationStatus.PENDING,
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def list_invitations(
    session: AsyncSession,
    tenant_id: UUID,
    *,
    limit: int,
    after: tuple[datetime, UUID] | None = None,
    status: str | None = None,
) -> list[Invitation]:
    """A page of a tenant's invitations, oldest first, after the ``(created_at, id)`` cursor."""
    statement = select(Invitation).where(Invitation.tenant_id == tenant_id)
    if status is not None:
        statement = statement.where(Invitation.status == status)
    if after is not None:
        statement = statement.where(tuple_(Invitation.created_at, Invitation.id) > tuple_(*after))
    statement = statement.order_by(Invitation.created_at, Invitation.id).limit(limit)
    return list((await session.execute(statement)).scalars())


async def tenant_of_token(session: AsyncSession, token_hash: bytes) -> UUID | None:
    """The tenant an invitation token belongs to (a cross-tenant lookup)."""
    statement = select(Invitation.tenant_id).where(Invitation.token_hash == token_hash)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_invitation_by_token(
    session: AsyncSession, token_hash: bytes, *, lock: RowLock = None
) -> Invitation | None:
    statement = select(Invitation).where(Invitation.token_hash == token_hash)
    statement = with_row_lock(statement, lock)
    return (await session.execute(statement)).scalar_one_or_none()


async def open_invitations(
    session: AsyncSession, tenant_id: UUID, *, lock: RowLock = None
) -> list[Invitation]:
    statement = select(Invitation).where(
        Invitation.tenant_id == tenant_id, Invitation.status == InvitationStatus.PENDING
    )
    statement = with_row_lock(statement, lock)
    return list((await session.execute(statement)).scalars())


async def claim_due_delivery(session: AsyncSession, now: datetime) -> Invitation | None:
    """Lock the next invitation whose mail is due; rows other replicas hold are skipped."""
    statement = (
        select(Invitation)
        .where(
            Invitation.status == InvitationStatus.PENDING,
            Invitation.delivery_state == DeliveryState.PENDING,
            Invitation.next_delivery_at <= now,
            Invitation.expires_at > now,
        )
        .order_by(Invitation.next_delivery_at)
        .limit(1)
    )
    statement = with_row_lock(statement, "update", skip_locked=True)
    return (await session.execute(statement)).scalar_one_or_none()


async def claim_expired(
    session: AsyncSession, now: datetime, *, limit: int
) -> Sequence[Invitation]:
    """Lock open invitations past their expiry; rows other replicas hold are skipped."""
    statement = (
        select(Invitation)
        .where(Invitation.status == InvitationStatus.PENDING, Invitation.expires_at <= now)
        .order_by(Invitation.expires_at)
        .limit(limit)
    )
    statement = with_row_lock(statement, "update", skip_locked=True)
    return list((await session.execute(statement)).scalars())


async def revoke_open_invitations(
    session: AsyncSession, tenant_id: UUID, *, now: datetime, by: str
) -> int:
    statement = (
        update(Invitation)
        .where(Invitation.tenant_id == tenant_id, Invitation.status == InvitationStatus.PENDING)
        .values(status=InvitationStatus.REVOKED, revoked_at=now, revoked_by=by)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)
