"""Bringing an existing single-tenant user base into a tenant, idempotently.

:func:`import_members` takes rows as read from a CSV or JSON-lines file
(``email``, optional ``user_id`` — the email when left out — and optional
``role``) and adds each new user as a member. A user already there (same
user id or same email) is skipped, so running an import twice changes
nothing the second time; a row that breaks a rule is reported as invalid
with the reason, and the others still go in. ``stellara tenants
import-users`` sends files here in batches through
``POST /tenants/{id}/members/import``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts.events import MemberAdded, Role, TenantStatus
from tenant_svc.errors import InvalidMember, TenantDeleted
from tenant_svc.members import repository
from tenant_svc.members.service import check_role, check_user_id, normalise_email
from tenant_svc.models import Member, Tenant
from tenant_svc.publishing import EventSink

Outcome = Literal["created", "skipped", "invalid"]

#: role names a single-tenant user base may use, and the member role they become
ROLE_ALIASES = {
    "admin": Role.TENANT_ADMIN,
    "administrator": Role.TENANT_ADMIN,
    "tenant_admin": Role.TENANT_ADMIN,
    "user": Role.USER,
    "member": Role.USER,
}


@dataclass(frozen=True)
class RowResult:
    line: int
    outcome: Outcome
    user_id: str | None = None
    email: str | None = None
    role: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class _Candidate:
    line: int
    user_id: str
    email: str | None
    role: Role


def _text(row: Mapping[str, Any], name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidMember(f"{name} must be text.", field=name)
    return value.strip() or None


def parse_row(line: int, row: Mapping[str, Any]) -> _Candidate:
    """One row as a member to create, or InvalidMember with the reason."""
    email = normalise_email(_text(row, "email"))
    user_id = _text(row, "user_id") or email
    if user_id is None:
        raise InvalidMember("A row needs an email (or a user_id).")
    role_name = (_text(row, "role") or "user").lower()
    role = check_role(ROLE_ALIASES.get(role_name, role_name))
    return _Candidate(line, check_user_id(user_id), email, role)


async def import_members(
    session: AsyncSession,
    sink: EventSink,
    tenant: Tenant,
    rows: Sequence[tuple[int, Mapping[str, Any]]],
) -> list[RowResult]:
    """Add every new user of ``rows`` (``(line number, fields)``); one result per row."""
    if tenant.status == TenantStatus.DELETED:
        raise TenantDeleted("Users cannot be imported into a deleted tenant.")
    results: dict[int, RowResult] = {}
    candidates: list[_Candidate] = []
    for index, (line, row) in enumerate(rows):
        try:
            candidates.append(parse_row(line, row))
        except InvalidMember as exc:
            results[index] = RowResult(line, "invalid", reason=exc.detail)
    positions = [i for i in range(len(rows)) if i not in results]

    known_ids, known_emails = await repository.existing(
        session,
        tenant.id,
        [c.user_id for c in candidates],
        [c.email for c in candidates if c.email],
    )
    now = datetime.now(UTC)
    new_members: list[Member] = []
    for index, candidate in zip(positions, candidates, strict=True):
        facts = {
            "user_id": candidate.user_id,
            "email": candidate.email,
            "role": str(candidate.role),
        }
        if candidate.user_id in known_ids or (candidate.email and candidate.email in known_emails):
            results[index] = RowResult(
                candidate.line, "skipped", reason="already a member", **facts
            )
            continue
        known_ids.add(candidate.user_id)
        if candidate.email:
            known_emails.add(candidate.email)
        new_members.append(
            Member(
                tenant_id=tenant.id,
                user_id=candidate.user_id,
                email=candidate.email,
                role=str(candidate.role),
                via="import",
                created_at=now,
                updated_at=now,
            )
        )
        results[index] = RowResult(candidate.line, "created", **facts)
    if new_members:
        session.add_all(new_members)
        await session.flush()
        await sink.publish(
            session,
            *(
                MemberAdded(
                    tenant_id=tenant.id,
                    user_id=m.user_id,
                    email=m.email,
                    role=Role(m.role),
                    via="import",
                )
                for m in new_members
            ),
        )
    return [results[i] for i in range(len(rows))]
