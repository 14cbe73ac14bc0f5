"""Members: users of a tenant with a role; a tenant that has an admin keeps one."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts.events import MemberAdded, MemberRemoved, Role, TenantStatus
from stellara_contracts.patterns import (
    EMAIL_MAX_LENGTH,
    EMAIL_PATTERN,
    USER_ID_MAX_LENGTH,
    USER_ID_PATTERN,
    USER_ID_RULE,
)
from stellara_kit.outbox import EventSink
from tenant_svc.errors import InvalidMember, LastAdmin, MemberExists, MemberNotFound, TenantDeleted
from tenant_svc.members import repository
from tenant_svc.models import Member, Tenant

Via = Literal["api", "invitation", "import"]
MEMBER_ROLES = (Role.TENANT_ADMIN, Role.USER)
# The rules the published schema states (``pattern``), checked here too for what arrives
# another way (imported rows, accepted invitations); email and user id are every service's
# (``stellara_contracts.patterns``).

#: a display name holds no control characters (C0, DEL, C1), line or paragraph separators,
#: bidirectional controls or zero-width characters: what would break or disguise it on screen
NAME_MAX = 200
NAME_PATTERN = (
    r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    r"\u2066-\u2069\ufeff]*$"
)
EMAIL = re.compile(EMAIL_PATTERN)
USER_ID = re.compile(USER_ID_PATTERN)
NAME = re.compile(NAME_PATTERN)


def normalise_email(email: str | None) -> str | None:
    if email is None:
        return None
    email = email.strip().lower()
    if len(email) > EMAIL_MAX_LENGTH or not EMAIL.match(email):
        raise InvalidMember(f"{email!r} is not an email address.", field="email")
    return email


def check_user_id(user_id: str) -> str:
    user_id = user_id.strip()
    if len(user_id) > USER_ID_MAX_LENGTH or not USER_ID.match(user_id):
        raise InvalidMember(
            f"A user id is {USER_ID_RULE}.",
            field="user_id",
        )
    return user_id


def clean_name(name: str | None) -> str | None:
    """A display name (``NAME_PATTERN``) trimmed, runs of whitespace as one space, at most
    ``NAME_MAX`` characters; None when blank."""
    if name is None:
        return None
    cleaned = " ".join(name.split())
    if len(cleaned) > NAME_MAX or not NAME.match(name):
        raise InvalidMember(
            f"A name is at most {NAME_MAX} characters without control, bidirectional or "
            "zero-width characters.",
            field="name",
        )
    return cleaned or None


def check_role(role: str) -> Role:
    if role not in MEMBER_ROLES:
        raise InvalidMember(
            f"A member's role is one of {', '.join(MEMBER_ROLES)}.",
            field="role",
            allowed_roles=list(MEMBER_ROLES),
        )
    return Role(role)


def _writable(tenant: Tenant) -> None:
    if tenant.status == TenantStatus.DELETED:
        raise TenantDeleted("A deleted tenant's members cannot be changed.")


def _added(member: Member, via: Via) -> MemberAdded:
    return MemberAdded(
        tenant_id=member.tenant_id,
        user_id=member.user_id,
        email=member.email,
        role=Role(member.role),
        via=via,
    )


async def get_member(session: AsyncSession, tenant_id: UUID, user_id: str) -> Member:
    member = await repository.get(session, tenant_id, user_id)
    if member is None:
        raise MemberNotFound(f"{user_id!r} is not a member of this tenant.", user_id=user_id)
    return member


async def add_member(
    session: AsyncSession,
    sink: EventSink,
    tenant: Tenant,
    *,
    user_id: str,
    email: str | None,
    role: str,
    name: str | None = None,
    via: Via = "api",
) -> Member:
    """Add a user to the tenant; a user id or email already there is a 409."""
    _writable(tenant)
    user_id = check_user_id(user_id)
    email = normalise_email(email)
    name = clean_name(name)
    checked_role = check_role(role)
    if await repository.get(session, tenant.id, user_id) is not None:
        raise MemberExists(f"{user_id!r} is already a member.", user_id=user_id)
    if email and await repository.get_by_email(session, tenant.id, email) is not None:
        raise MemberExists(f"A member with the email {email!r} exists already.", email=email)
    now = datetime.now(UTC)
    member = await repository.add_if_new(
        session,
        {
            "tenant_id": tenant.id,
            "user_id": user_id,
            "email": email,
            "name": name,
            "role": str(checked_role),
            "via": via,
            "created_at": now,
            "updated_at": now,
        },
    )
    if member is None:  # the same user was added by a request running at the same time
        raise MemberExists(f"{user_id!r} or {email!r} became a member just now.", user_id=user_id)
    await sink.publish(session, _added(member, via))
    return member


async def _keep_an_admin(session: AsyncSession, member: Member) -> None:
    if member.role != Role.TENANT_ADMIN:
        return
    admins = await repository.locked_admins(session, member.tenant_id)
    if [a.user_id for a in admins] == [member.user_id]:
        raise LastAdmin(
            "This is the tenant's only admin: make another member tenant_admin first.",
            user_id=member.user_id,
        )


async def change_role(
    session: AsyncSession, sink: EventSink, tenant: Tenant, user_id: str, role: str
) -> Member:
    """Give a member another role (emitted as MemberAdded with the new role)."""
    _writable(tenant)
    checked_role = check_role(role)
    member = await repository.get(session, tenant.id, user_id, lock="update")
    if member is None:
        raise MemberNotFound(f"{user_id!r} is not a member of this tenant.", user_id=user_id)
    if member.role == checked_role:
        return member
    await _keep_an_admin(session, member)
    member.role = str(checked_role)
    member.updated_at = datetime.now(UTC)
    await session.flush()
    await sink.publish(session, _added(member, "api"))
    return member


async def remove_member(
    session: AsyncSession, sink: EventSink, tenant: Tenant, user_id: str
) -> None:
    _writable(tenant)
    member = await repository.get(session, tenant.id, user_id, lock="update")
    if member is None:
        raise MemberNotFound(f"{user_id!r} is not a member of this tenant.", user_id=user_id)
    await _keep_an_admin(session, member)
    await repository.remove(session, member)
    await sink.publish(
        session, MemberRemoved(tenant_id=tenant.id, user_id=member.user_id, email=member.email)
    )


async def accept_invitation(
    session: AsyncSession,
    sink: EventSink,
    tenant: Tenant,
    *,
    user_id: str,
    email: str,
    role: str,
) -> tuple[Member, bool]:
    """The invited user joins with the invited role; (member, whether anything changed).

    An invitation never takes a role away (an admin invited as a user stays an
    admin). A member found by email but under another user id (e.g. imported
    before the user ever signed in) is re-keyed to the id the invitation confirmed.
    """
    user_id = check_user_id(user_id)
    clean_email = normalise_email(email)
    checked_role = check_role(role)
    member = await repository.get(session, tenant.id, user_id, lock="update")
    if member is None and clean_email:
        member = await repository.get_by_email(session, tenant.id, clean_email, lock="update")
    now = datetime.now(UTC)
    if member is None:
        member = await repository.add(
            session,
            Member(
                tenant_id=tenant.id,
                user_id=user_id,
                email=clean_email,
                role=str(checked_role),
                via="invitation",
                created_at=now,
                updated_at=now,
            ),
        )
    elif member.user_id == user_id and checked_role in (member.role, Role.USER):
        return member, False
    else:
        member.user_id = user_id
        if checked_role == Role.TENANT_ADMIN:
            member.role = str(checked_role)
        member.email = member.email or clean_email
        member.updated_at = now
        await session.flush()
    await sink.publish(session, _added(member, "invitation"))
    return member, True


async def list_members(
    session: AsyncSession,
    tenant_id: UUID,
    *,
    role: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Member]:
    return await repository.list_page(session, tenant_id, role=role, after=after, limit=limit)
