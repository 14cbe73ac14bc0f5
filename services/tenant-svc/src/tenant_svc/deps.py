"""What routes share: the service's parts, the unit of work on one tenant, ETags, scopes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from stellara_kit.auth import Principal
from stellara_kit.bounds import INT32_MAX, bounded_int
from stellara_kit.db import Database, set_tenant
from stellara_kit.locks import RowLock
from stellara_kit.problems import InsufficientScope
from tenant_svc.config.catalogue import ConfigCatalogue
from tenant_svc.errors import TenantNotFound
from tenant_svc.idempotency import IdempotencyStore, idempotent
from tenant_svc.models import Tenant
from tenant_svc.publishing import EventSink
from tenant_svc.settings import Settings
from tenant_svc.tenants import repository as tenants_repo

Access = Literal["read", "admin", "platform"]


@dataclass(frozen=True)
class Tenancy:
    """The parts of the service a request needs, built once in ``create_app``."""

    settings: Settings
    db: Database
    sink: EventSink
    catalogue: ConfigCatalogue
    idempotency: IdempotencyStore

    @asynccontextmanager
    async def tenant_unit(
        self, ref: str, principal: Principal, *, access: Access, lock: RowLock = None
    ) -> AsyncIterator[tuple[AsyncSession, Tenant]]:
        """One transaction on the tenant ``ref`` (id or slug), after authorizing the caller.

        The tenant context for row-level security is set before any tenant-scoped
        table is touched; a tenant the caller may not see is a 404, like one that
        does not exist.
        """
        tenant_id = parse_uuid(ref)
        if tenant_id is not None:
            _authorize(principal, tenant_id, access)
            async with self.db.transaction(tenant_id) as session:
                tenant = await tenants_repo.get(session, tenant_id, lock=lock)
                if tenant is None:
                    raise TenantNotFound("No such tenant.")
                yield session, tenant
            return
        async with self.db.unscoped_transaction() as session:
            tenant = await tenants_repo.get_by_slug(session, ref, lock=lock)
            if tenant is None:
                raise TenantNotFound("No such tenant.")
            _authorize(principal, tenant.id, access)
            await set_tenant(session, tenant.id)
            yield session, tenant

    async def write(
        self,
        session: AsyncSession,
        request: Request,
        principal: Principal,
        produce: Callable[[], Awaitable[Response]],
        *,
        replay_as: Callable[[Response], Response] | None = None,
    ) -> Response:
        """Run a write once per ``Idempotency-Key`` inside the open transaction."""
        return await idempotent(
            self.idempotency, session, request, principal, produce, replay_as=replay_as
        )


def _authorize(principal: Principal, tenant_id: UUID, access: Access) -> None:
    if access == "read":
        principal.require_read(tenant_id)
    elif access == "admin":
        principal.require_admin(tenant_id)
    else:
        principal.require_read(tenant_id)
        principal.require_platform_admin()


def parse_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


def require_scope(principal: Principal, scope: str) -> None:
    """A caller that came with an API key needs the scope for what it does."""
    if principal.via == "api_key" and scope not in principal.scopes:
        raise InsufficientScope(f"This API key lacks the `{scope}` scope.", required_scope=[scope])


def refuse_api_keys(principal: Principal) -> None:
    """Managing members and API keys is for people, not for machine clients."""
    if principal.via == "api_key":
        raise InsufficientScope(
            "API keys cannot manage members or API keys; sign in as an admin.", required_scope=[]
        )


def tenancy(request: Request) -> Tenancy:
    parts: Tenancy = request.app.state.tenancy
    return parts


#: ``ctx: Ctx`` in a route signature
Ctx = Annotated[Tenancy, Depends(tenancy)]

#: the ``{id}`` path segment: a tenant id, or a slug
TenantRef = Annotated[
    str,
    Path(
        alias="id",
        description="The tenant's id (UUID) or its slug.",
        examples=["5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11"],
        min_length=1,
        max_length=63 * 2,
    ),
]

Cursor = Annotated[
    str | None, Query(description="`next_cursor` of the previous page.", max_length=512)
]


def etag_of(version: int) -> str:
    return f'"{version}"'


def matches(if_match: str | None, version: int) -> bool:
    """Whether an ``If-Match`` header admits ``version`` (no header admits anything)."""
    if if_match is None:
        return True
    for candidate in (part.strip() for part in if_match.split(",")):
        if candidate == "*":
            return True
        candidate = candidate.removeprefix("W/").strip('"')
        if candidate == str(version):
            return True
    return False


def expected_version(if_match: str | None) -> int | None:
    """The single version an ``If-Match`` names (None: no header or ``*``); -1 if unreadable."""
    if if_match is None or if_match.strip() == "*":
        return None
    value = if_match.split(",")[0].strip().removeprefix("W/").strip('"')
    version = bounded_int(value, INT32_MAX)
    return -1 if version is None else version
