"""The asyncpg connection under a unit of work: the same transaction, the same tenant."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import asyncpg
from sqlalchemy import insert, select

from stellara_kit.db import asyncpg_connection


class TestAsyncpgConnection:
    async def test_it_runs_inside_the_sessions_transaction_with_its_tenant(
        self, kit_db: Any
    ) -> None:
        tenant = uuid4()
        async with kit_db.database.transaction(tenant) as session:
            conn = await asyncpg_connection(session)
            assert isinstance(conn, asyncpg.Connection)
            assert conn.is_in_transaction()
            assert await conn.fetchval("SELECT current_setting('app.tenant_id')") == str(tenant)
            await conn.execute("INSERT INTO notes (tenant_id, body) VALUES ($1, 'raw')", tenant)
            # the session sees the row the driver wrote: one transaction, not two
            bodies = (await session.execute(select(kit_db.notes.c.body))).scalars().all()
            assert bodies == ["raw"]

    async def test_what_it_wrote_rolls_back_with_the_session(self, kit_db: Any) -> None:
        tenant = uuid4()
        try:
            async with kit_db.database.transaction(tenant) as session:
                await session.execute(insert(kit_db.notes).values(tenant_id=tenant, body="orm"))
                conn = await asyncpg_connection(session)
                await conn.execute("INSERT INTO notes (tenant_id, body) VALUES ($1, 'raw')", tenant)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        async with kit_db.database.transaction(tenant) as session:
            assert (await session.execute(select(kit_db.notes))).all() == []
