"""The unit of work on one tenant: authorize, find by id or slug, set the tenant, 404 else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import UUID, uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts.events import Role
from stellara_kit import problems
from stellara_kit.auth import Principal
from stellara_kit.db import Database
from stellara_kit.errors import TenantNotFound
from stellara_kit.locks import RowLock
from stellara_kit.problems import InsufficientScope, RoleRequired
from stellara_kit.tenant_unit import TenantUnits

#: the caller's access refused (kit's auth) or no such tenant (the unit): one answer, a 404
NOT_FOUND = (problems.TenantNotFound, TenantNotFound)


@dataclass
class FakeSession:
    tenant: str | None = None

    async def execute(self, statement: Any, params: dict[str, str] | None = None) -> None:
        self.tenant = (params or {}).get("tenant", self.tenant)


@dataclass
class FakeDatabase:
    opened: list[tuple[str, str | None]] = field(default_factory=list)

    @asynccontextmanager
    async def transaction(self, tenant_id: UUID) -> AsyncIterator[FakeSession]:
        self.opened.append(("tenant", str(tenant_id)))
        yield FakeSession(str(tenant_id))

    @asynccontextmanager
    async def unscoped_transaction(self) -> AsyncIterator[FakeSession]:
        self.opened.append(("unscoped", None))
        yield FakeSession()


@dataclass(frozen=True)
class Shop:
    id: UUID
    slug: str


ACME = Shop(uuid4(), "acme")


async def by_id(session: AsyncSession, tenant_id: UUID, *, lock: RowLock = None) -> Shop | None:
    return ACME if tenant_id == ACME.id else None


async def by_slug(session: AsyncSession, slug: str, *, lock: RowLock = None) -> Shop | None:
    return ACME if slug == ACME.slug else None


def _units(db: FakeDatabase, **options: Any) -> TenantUnits[Shop]:
    return TenantUnits(cast(Database, db), by_id=by_id, **options)


def member(tenant_id: UUID, role: Role = Role.USER, **claims: Any) -> Principal:
    return Principal(subject="ada", role=role, tenant_id=tenant_id, **claims)


class TestTenantUnit:
    async def test_an_id_opens_the_tenants_transaction(self) -> None:
        db = FakeDatabase()
        async with _units(db)(str(ACME.id), member(ACME.id), access="read") as (session, shop):
            assert shop == ACME
            assert cast(FakeSession, session).tenant == str(ACME.id)
        assert db.opened == [("tenant", str(ACME.id))]

    async def test_a_slug_is_found_then_its_tenant_is_set(self) -> None:
        db = FakeDatabase()
        units = _units(db, by_slug=by_slug)
        async with units("acme", member(ACME.id), access="read") as (session, shop):
            assert shop == ACME
            assert cast(FakeSession, session).tenant == str(ACME.id)
        assert db.opened == [("unscoped", None)]

    async def test_another_tenant_is_not_found_and_opens_nothing(self) -> None:
        db = FakeDatabase()
        with pytest.raises(NOT_FOUND):
            async with _units(db)(ACME.id, member(uuid4()), access="read"):
                pass
        assert db.opened == []

    async def test_an_unknown_tenant_or_slug_is_not_found(self) -> None:
        units = _units(FakeDatabase(), by_slug=by_slug)
        stranger = uuid4()
        for ref in (str(stranger), "nobody"):
            with pytest.raises(NOT_FOUND):
                async with units(ref, member(stranger, Role.PLATFORM_ADMIN), access="read"):
                    pass

    async def test_a_slug_where_the_service_knows_none_is_not_found(self) -> None:
        with pytest.raises(NOT_FOUND):
            async with _units(FakeDatabase())("acme", member(ACME.id), access="read"):
                pass

    async def test_admin_and_platform_access_need_their_roles(self) -> None:
        units = _units(FakeDatabase())
        for access in ("admin", "platform"):
            with pytest.raises(RoleRequired):
                async with units(ACME.id, member(ACME.id), access=access):  # type: ignore[arg-type]
                    pass
        async with units(ACME.id, member(ACME.id, Role.TENANT_ADMIN), access="admin") as (_, s):
            assert s == ACME

    async def test_the_services_own_check_runs_after_the_access(self) -> None:
        def refuse(principal: Principal) -> None:
            raise InsufficientScope("no scope")

        units = _units(FakeDatabase(), check=refuse)
        with pytest.raises(InsufficientScope):
            async with units(ACME.id, member(ACME.id), access="read"):
                pass
        with pytest.raises(NOT_FOUND):
            async with units(ACME.id, member(uuid4()), access="read"):
                pass
