"""The database keeps tenants apart, not only the code: row-level security under the service's role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from stellara_kit.db import Database, asyncpg_dsn
from stellara_kit.testing import TestDatabase
from tenant_svc.settings import Settings


async def tenant_scoped_tables(admin_url: str) -> list[str]:
    """Every table of the service that has a ``tenant_id`` column."""
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        records = await conn.fetch(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY table_name"
        )
    finally:
        await conn.close()
    return [r["table_name"] for r in records]


@pytest_asyncio.fixture
async def runtime_db(settings: Settings) -> AsyncIterator[Database]:
    """Connected exactly as the service connects: its runtime database URL."""
    database = Database(settings.database_url, pool_size=1)
    try:
        yield database
    finally:
        await database.dispose()


@pytest_asyncio.fixture
async def populated(kit: Any, test_database: TestDatabase) -> dict[str, Any]:
    """Tenant acme with a row in every tenant-scoped table; tenant globex with none."""
    acme = await kit.active_tenant("acme")
    globex = await kit.active_tenant("globex")
    admin = kit.tenant_admin(acme["id"])
    base = f"/tenants/{acme['id']}"
    for method, path, body in (
        ("PUT", f"{base}/config/billing.currency", {"value": "EUR"}),
        ("POST", f"{base}/members", {"user_id": "u-ada", "email": "ada@acme.example"}),
        ("POST", f"{base}/api-keys", {"name": "worker", "scopes": ["usage:write"]}),
    ):
        response = await kit.client.request(method, path, json=body, headers=admin)
        assert response.status_code in (200, 201), response.text
    conn = await asyncpg.connect(asyncpg_dsn(test_database.admin_url))
    try:
        await conn.execute(
            "INSERT INTO tenant_received_events (tenant_id, event_id, type, outcome) "
            "VALUES ($1, $2, 'stellara.onboarding.completed.v1', 'activated')",
            acme["id"],
            uuid4(),
        )
    finally:
        await conn.close()
    return {"acme": acme["id"], "globex": globex["id"]}


class TestRowLevelSecurity:
    async def test_another_tenant_set_sees_nothing_even_without_a_where_clause(
        self, populated: dict[str, Any], runtime_db: Database, test_database: TestDatabase
    ) -> None:
        tables = await tenant_scoped_tables(test_database.admin_url)
        assert {"tenant_configs", "tenant_members", "tenant_api_keys"} <= set(tables)
        for table in tables:
            async with runtime_db.transaction(populated["acme"]) as session:
                own = (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
            async with runtime_db.transaction(populated["globex"]) as session:
                other = (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
            async with runtime_db.unscoped_transaction() as session:
                unset = (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
            assert (own, other, unset) == (own, 0, 0), table
            assert own > 0, f"{table} has no row of acme: the check would prove nothing"

    async def test_another_tenant_set_cannot_write_or_change_its_rows(
        self, populated: dict[str, Any], runtime_db: Database
    ) -> None:
        async with runtime_db.transaction(populated["globex"]) as session:
            changed = await session.execute(text("UPDATE tenant_members SET role = 'tenant_admin'"))
            deleted = await session.execute(text("DELETE FROM tenant_api_keys"))
        assert (changed.rowcount, deleted.rowcount) == (0, 0)  # type: ignore[attr-defined]
        with pytest.raises(DBAPIError, match="row-level security"):
            async with runtime_db.transaction(populated["globex"]) as session:
                await session.execute(
                    text(
                        "INSERT INTO tenant_members (tenant_id, user_id, role) "
                        "VALUES (:tenant, 'intruder', 'tenant_admin')"
                    ),
                    {"tenant": str(populated["acme"])},
                )
        async with runtime_db.transaction(populated["acme"]) as session:
            members = (
                await session.execute(text("SELECT user_id, role FROM tenant_members"))
            ).all()
        assert [tuple(m) for m in members] == [("u-ada", "user")]


class TestRuntimeRole:
    async def test_owns_no_table_and_cannot_bypass_row_level_security(
        self, runtime_db: Database, test_database: TestDatabase
    ) -> None:
        async with runtime_db.unscoped_transaction() as session:
            owned = (
                await session.execute(
                    text("SELECT tablename FROM pg_tables WHERE tableowner = current_user")
                )
            ).all()
            role = (
                await session.execute(
                    text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
                )
            ).one()
        assert owned == []
        assert tuple(role) == (False, False)

    async def test_every_tenant_scoped_table_has_security_enabled_and_forced(
        self, runtime_db: Database, test_database: TestDatabase
    ) -> None:
        tables = await tenant_scoped_tables(test_database.admin_url)
        async with runtime_db.unscoped_transaction() as session:
            flags = dict(
                (
                    await session.execute(
                        text(
                            "SELECT relname, relrowsecurity AND relforcerowsecurity FROM pg_class "
                            "WHERE relname = ANY(:tables) AND relkind = 'r'"
                        ),
                        {"tables": tables},
                    )
                ).all()
            )
        assert flags == dict.fromkeys(tables, True)
