"""The unit of work on one tenant that every tenant-scoped route opens.

``async with parts.tenant_unit(ref, principal, access="admin") as (session, tenant):``
authorizes the caller for the tenant, opens the transaction, sets the tenant
for row-level security before any tenant-scoped table is touched, and finds
the tenant; a tenant the caller may not see is a 404 ``tenant-not-found``,
like one that does not exist. ``ref`` is the tenant's id or, where the service
knows slugs, its slug. What a tenant is, and how it is found, is the
service's: :class:`TenantUnits` takes its finders.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Generic, Literal, Protocol, TypeVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from stellara_kit.auth import Principal
from stellara_kit.db import Database, set_tenant
from stellara_kit.errors import TenantNotFound
from stellara_kit.locks import RowLock

#: what the caller needs on the tenant: read it, administer it, or be a platform admin
Access = Literal["read", "admin", "platform"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class FindById(Protocol[T_co]):
    """The tenant with this id (under its row-level security), or None."""

    def __call__(
        self, session: AsyncSession, tenant_id: UUID, *, lock: RowLock = None
    ) -> Awaitable[T_co | None]: ...


class FindBySlug(Protocol[T_co]):
    """The tenant with this slug (in a transaction without a tenant), or None."""

    def __call__(
        self, session: AsyncSession, slug: str, *, lock: RowLock = None
    ) -> Awaitable[T_co | None]: ...


def authorize(principal: Principal, tenant_id: UUID, access: Access) -> None:
    """Refuse a caller without ``access`` to the tenant (another tenant's is not found)."""
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


async def tenant_id_only(session: AsyncSession, tenant_id: UUID, *, lock: RowLock = None) -> UUID:
    """A finder for services whose service layer looks the tenant up itself: the id."""
    return tenant_id


def no_such_tenant() -> TenantNotFound:
    return TenantNotFound("No such tenant.")


class TenantUnits(Generic[T]):
    """Opens units of work on one tenant of a service (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        by_id: FindById[T],
        by_slug: FindBySlug[T] | None = None,
        check: Callable[[Principal], None] | None = None,
    ) -> None:
        """``check`` refuses a caller for the service's own reasons (an API key's scopes),
        after the access to the tenant and before the tenant is looked up."""
        self.db = db
        self.by_id = by_id
        self.by_slug = by_slug
        self.check = check

    def __call__(
        self, ref: str | UUID, principal: Principal, *, access: Access, lock: RowLock = None
    ) -> AbstractAsyncContextManager[tuple[AsyncSession, T]]:
        return self._unit(ref, principal, access=access, lock=lock)

    @asynccontextmanager
    async def _unit(
        self, ref: str | UUID, principal: Principal, *, access: Access, lock: RowLock
    ) -> AsyncIterator[tuple[AsyncSession, T]]:
        tenant_id = ref if isinstance(ref, UUID) else parse_uuid(ref)
        if tenant_id is not None or self.by_slug is None:
            if tenant_id is None:
                raise no_such_tenant()
            self._authorize(principal, tenant_id, access)
            async with self.db.transaction(tenant_id) as session:
                tenant = await self.by_id(session, tenant_id, lock=lock)
                if tenant is None:
                    raise no_such_tenant()
                yield session, tenant
            return
        assert isinstance(ref, str)
        async with self.db.unscoped_transaction() as session:
            found = await self.by_slug(session, ref, lock=lock)
            if found is None:
                raise no_such_tenant()
            slug_tenant_id = getattr(found, "id", None)
            assert isinstance(slug_tenant_id, UUID)
            self._authorize(principal, slug_tenant_id, access)
            await set_tenant(session, slug_tenant_id)
            yield session, found

    def _authorize(self, principal: Principal, tenant_id: UUID, access: Access) -> None:
        authorize(principal, tenant_id, access)
        if self.check is not None:
            self.check(principal)
