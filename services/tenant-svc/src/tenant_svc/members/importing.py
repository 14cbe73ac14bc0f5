"""Bringing an existing single-tenant user base into a tenant, idempotently.

:func:`import_members` takes rows as read from a CSV or JSON-lines file
(``email``, optional ``user_id`` — the email when left out —, optional
``role`` and optional ``name``) and adds each new user as a member. A user
already there (same user id or same email), or named twice in one batch, is
skipped, so running an import twice changes nothing the second time; a row
that breaks a rule is reported as invalid with the reason, and the others
still go in. ``stellara tenants
import-users`` sends files here in batches through
``POST /tenants/{id}/members/import``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts.events import MemberAdded, Role, TenantStatus
from stellara_kit.outbox import EventSink
from tenant_svc.errors import InvalidMember, TenantDeleted
from tenant_svc.members import repository
from tenant_svc.members.service import check_role, check_user_id, clean_name, normalise_email
from tenant_svc.models import Tenant

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
    name: str | None
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
    return _Candidate(line, check_user_id(user_id), email, clean_name(_text(row, "name")), role)


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
    new_members: dict[int, dict[str, Any]] = {}  # row index → the member's columns
    # users this batch creates, by id and by email: the line that named them first
    created_ids: dict[str, int] = {}
    created_emails: dict[str, int] = {}
    for index, candidate in zip(positions, candidates, strict=True):
        facts = {
            "user_id": candidate.user_id,
            "email": candidate.email,
            "role": str(candidate.role),
        }
        earlier = created_ids.get(candidate.user_id)
        if earlier is None and candidate.email:
            earlier = created_emails.get(candidate.email)
        if earlier is not None:
            results[index] = RowResult(
                candidate.line, "skipped", reason=f"the same user as line {earlier}", **facts
            )
            continue
        if candidate.user_id in known_ids or (candidate.email and candidate.email in known_emails):
            results[index] = RowResult(
                candidate.line, "skipped", reason="already a member", **facts
            )
            continue
        created_ids[candidate.user_id] = candidate.line
        if candidate.email:
            created_emails[candidate.email] = candidate.line
        new_members[index] = {
            "tenant_id": tenant.id,
            "user_id": candidate.user_id,
            "email": candidate.email,
            "name": candidate.name,
            "role": str(candidate.role),
            "via": "import",
            "created_at": now,
            "updated_at": now,
        }
        results[index] = RowResult(candidate.line, "created", **facts)
    # an import running at the same time may have added some of them since the check above
    inserted = await repository.add_new(session, list(new_members.values()))
    for index, member in new_members.items():
        if member["user_id"] not in inserted:
            results[index] = replace(results[index], outcome="skipped", reason="already a member")
    added = [m for m in new_members.values() if m["user_id"] in inserted]
    if added:
        await sink.publish(
            session,
            *(
                MemberAdded(
                    tenant_id=tenant.id,
                    user_id=m["user_id"],
                    email=m["email"],
                    role=Role(m["role"]),
                    via="import",
                )
                for m in added
            ),
        )
    return [results[i] for i in range(len(rows))]
