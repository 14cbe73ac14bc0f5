"""Row-level security, seen as the runtime role: the database keeps tenants apart."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError


async def seed(kit_db: Any) -> tuple:
    a, b = uuid4(), uuid4()
    for tenant, body in ((a, "a1"), (a, "a2"), (b, "b1")):
        async with kit_db.database.transaction(tenant) as session:
            await session.execute(insert(kit_db.notes).values(tenant_id=tenant, body=body))
    return a, b


class TestRowLevelSecurity:
    async def test_query_without_tenant_filter_sees_only_current_tenant(self, kit_db: Any) -> None:
        a, b = await seed(kit_db)
        async with kit_db.database.transaction(a) as session:
            bodies = sorted((await session.execute(select(kit_db.notes.c.body))).scalars())
        assert bodies == ["a1", "a2"]
        async with kit_db.database.transaction(b) as session:
            assert list((await session.execute(select(kit_db.notes.c.body))).scalars()) == ["b1"]

    async def test_no_tenant_set_sees_nothing(self, kit_db: Any) -> None:
        await seed(kit_db)
        async with kit_db.database.unscoped_transaction() as session:
            assert (await session.execute(select(kit_db.notes))).all() == []

    async def test_system_context_sees_every_tenant(self, kit_db: Any) -> None:
        await seed(kit_db)
        async with kit_db.database.system_transaction() as session:
            assert len((await session.execute(select(kit_db.notes))).all()) == 3

    async def test_writing_a_row_for_another_tenant_is_refused(self, kit_db: Any) -> None:
        a, b = uuid4(), uuid4()
        with pytest.raises(DBAPIError, match="row-level security"):
            async with kit_db.database.transaction(a) as session:
                await session.execute(insert(kit_db.notes).values(tenant_id=b, body="sneaky"))

    async def test_pooled_connection_does_not_carry_tenant_into_next_transaction(
        self, kit_db: Any
    ) -> None:
        a, _ = await seed(kit_db)
        async with kit_db.database.transaction(a) as session:
            assert len((await session.execute(select(kit_db.notes))).all()) == 2
        # the pool has 2 connections; every later unscoped transaction must see nothing
        for _ in range(6):
            async with kit_db.database.unscoped_transaction() as session:
                setting = (
                    await session.execute(text("SELECT current_setting('app.tenant_id', true)"))
                ).scalar()
                assert not setting
                assert (await session.execute(select(kit_db.notes))).all() == []

    async def test_runtime_role_is_neither_owner_nor_bypassing(self, kit_db: Any) -> None:
        async with kit_db.database.unscoped_transaction() as session:
            row = (
                await session.execute(
                    text(
                        "SELECT rolsuper, rolbypassrls, "
                        "(SELECT count(*) FROM pg_tables WHERE tableowner = current_user) "
                        "FROM pg_roles WHERE rolname = current_user"
                    )
                )
            ).one()
        assert tuple(row) == (False, False, 0)
