"""Tenant isolation: row-level security on every usage table, and object-level authorization."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import pytest

from stellara_contracts import new_event, topics
from stellara_contracts.events import MemberAdded, Role
from stellara_kit.auth import Principal, mint_internal_token
from stellara_kit.db import asyncpg_dsn
from stellara_kit.testing import produce_raw

from .conftest import RunningService
from .helpers import headers, outbox_drained, produce_usage, record, wait_for_events

USAGE_TABLES = (
    "raw_events",
    "usage_dedup",
    "hourly_aggregates",
    "period_aggregates",
    "unique_values_hourly",
    "usage_thresholds",
    "billing_periods",
    "tenant_members",
)

USAGE_READS = ("", "/daily", "/trends", "/invoice-preview")


@asynccontextmanager
async def runtime_connection(service: RunningService) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the service's own database role (no owner, no BYPASSRLS)."""
    conn = await asyncpg.connect(asyncpg_dsn(service.database.runtime_url))
    try:
        yield conn
    finally:
        await conn.close()


async def rows_seen(conn: asyncpg.Connection, table: str, *, as_tenant: UUID | None) -> list[UUID]:
    """The tenant ids of every row of ``table`` the role sees, with no WHERE clause."""
    async with conn.transaction():
        if as_tenant is not None:
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(as_tenant))
        return [row[0] for row in await conn.fetch(f"SELECT tenant_id FROM {table}")]


VISITORS = {
    "key": "visitors",
    "aggregation": "UNIQUE_COUNT",
    "unit": "visitors",
    "unique_property": "user",
}


class TestRowLevelSecurity:
    async def _tenant_in_every_table(self, service: RunningService) -> UUID:
        settings, http = service.settings, service.http
        added = await http.post("/meters", json=VISITORS, headers=headers(settings))
        assert added.status_code in (200, 201), added.text
        tenant = (await service.new_tenant(plan="free")).tenant_id
        member = new_event(
            MemberAdded(tenant_id=tenant, user_id="ada", role=Role.USER), source="tenant-svc"
        )
        await produce_raw(
            settings.kafka_bootstrap_servers,
            settings.topic(topics.TENANT_EVENTS),
            [(member.key, member.to_json())],
        )
        await produce_usage(
            settings,
            [
                record(tenant, "api_calls", 9000),  # 90% of the free plan: a threshold row
                record(tenant, "visitors", 1, properties={"user": "ada"}),
            ],
        )
        await wait_for_events(http, settings, tenant, "active_users", 1)
        await wait_for_events(http, settings, tenant, "visitors", 1)
        await service.app.state.billing.close_finished(datetime.now(UTC))
        await outbox_drained(service.database.owner_url)
        return tenant

    async def test_another_tenants_rows_are_invisible_without_any_where_clause(
        self, service: RunningService
    ) -> None:
        owner = await self._tenant_in_every_table(service)
        other = (await service.new_tenant()).tenant_id
        await produce_usage(service.settings, [record(other, "api_calls", 1)])
        await wait_for_events(service.http, service.settings, other, "api_calls", 1)

        async with runtime_connection(service) as conn:
            for table in USAGE_TABLES:
                mine = await rows_seen(conn, table, as_tenant=owner)
                assert mine and set(mine) == {owner}, table
                theirs = await rows_seen(conn, table, as_tenant=other)
                assert owner not in theirs, table
                assert await rows_seen(conn, table, as_tenant=None) == [], table

    async def test_a_partition_read_directly_is_filtered_too(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        await produce_usage(service.settings, [record(tenant, "api_calls", 1)])
        await wait_for_events(service.http, service.settings, tenant, "api_calls", 1)
        partition = f"raw_events_p{datetime.now(UTC):%Y%m%d}"

        async with runtime_connection(service) as conn:
            assert tenant in await rows_seen(conn, partition, as_tenant=tenant)
            assert tenant not in await rows_seen(conn, partition, as_tenant=uuid4())

    async def test_the_service_role_cannot_switch_row_level_security_off(
        self, service: RunningService
    ) -> None:
        async with runtime_connection(service) as conn:
            for statement in (
                "ALTER TABLE hourly_aggregates DISABLE ROW LEVEL SECURITY",
                "ALTER TABLE hourly_aggregates NO FORCE ROW LEVEL SECURITY",
                "DROP POLICY tenant_isolation ON hourly_aggregates",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(statement)

    async def test_the_service_role_cannot_use_the_owners_partition_helpers_on_other_tables(
        self, service: RunningService
    ) -> None:
        async with runtime_connection(service) as conn:
            for function in ("usage_secure_partition", "usage_partition_oid"):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(f"SELECT {function}('meters')")


@asynccontextmanager
async def owner_connection(service: RunningService) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(asyncpg_dsn(service.database.owner_url))
    try:
        yield conn
    finally:
        await conn.close()


#: the functions that run with the owner's rights, each checking every name it acts on
DEFINER_FUNCTIONS = {
    "usage_secure_partition",
    "usage_ensure_raw_partitions",
    "usage_dedup_epoch",
    "usage_drop_expired_partitions",
}


class TestOwnerFunctions:
    async def test_the_service_role_only_reads_the_table_the_owners_functions_trust(
        self, service: RunningService
    ) -> None:
        async with runtime_connection(service) as conn:
            assert await conn.fetchval("SELECT count(*) FROM usage_dedup_epochs") >= 0
            for statement in (
                "INSERT INTO usage_dedup_epochs VALUES ('2000-01-01', '2000-01-02', 'meters')",
                "UPDATE usage_dedup_epochs SET partition_name = 'meters'",
                "DELETE FROM usage_dedup_epochs",
                "TRUNCATE usage_dedup_epochs",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(statement)

    async def test_retention_refuses_an_epoch_that_names_another_table(
        self, service: RunningService
    ) -> None:
        # as a row written before the runtime role lost its write would have been
        async with owner_connection(service) as owner:
            await owner.execute(
                "INSERT INTO usage_dedup_epochs VALUES ('2000-01-01', '2000-01-02', 'meters')"
            )
            try:
                async with runtime_connection(service) as conn:
                    with pytest.raises(asyncpg.InvalidParameterValueError, match="meters"):
                        await conn.fetchval(
                            "SELECT usage_drop_expired_partitions('2000-01-01', '2000-02-01')"
                        )
            finally:
                await owner.execute("DELETE FROM usage_dedup_epochs WHERE start_day = '2000-01-01'")
            assert await owner.fetchval("SELECT to_regclass('public.meters')") is not None

    @pytest.mark.parametrize(
        "name",
        [
            "meters",
            "raw_events",
            "usage_dedup_epochs",
            'raw_events_p20261201"; DROP TABLE meters; --',
            "raw_events_p99991231",  # the right shape, but no such partition
            "usage_dedup_e20261201",
        ],
    )
    async def test_securing_a_partition_refuses_any_other_name(
        self, service: RunningService, name: str
    ) -> None:
        async with owner_connection(service) as owner:
            with pytest.raises(asyncpg.InvalidParameterValueError, match="refused"):
                await owner.execute("SELECT usage_secure_partition($1)", name)
            assert await owner.fetchval("SELECT to_regclass('public.meters')") is not None

    async def test_every_owner_function_pins_its_search_path(self, service: RunningService) -> None:
        async with owner_connection(service) as owner:
            rows = await owner.fetch(
                "SELECT proname, proconfig FROM pg_proc"
                " WHERE prosecdef AND pronamespace = 'public'::regnamespace"
            )
        assert {row["proname"] for row in rows} == DEFINER_FUNCTIONS
        for row in rows:
            assert row["proconfig"] == ["search_path=pg_catalog, public, pg_temp"], row["proname"]


class TestAuthorization:
    @pytest.mark.parametrize("path", USAGE_READS)
    async def test_a_tenants_token_cannot_read_another_tenants_usage(
        self, service: RunningService, path: str
    ) -> None:
        mine = (await service.new_tenant()).tenant_id
        theirs = (await service.new_tenant()).tenant_id

        response = await service.http.get(
            f"/tenants/{theirs}/usage{path}", headers=headers(service.settings, mine)
        )
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["status"] == 404
        assert not {"metrics", "rows", "line_items", "total"} & set(problem)

    async def test_an_unknown_tenant_and_a_forbidden_one_look_the_same(
        self, service: RunningService
    ) -> None:
        mine = (await service.new_tenant()).tenant_id
        theirs = (await service.new_tenant()).tenant_id
        sent = headers(service.settings, mine)

        forbidden = await service.http.get(f"/tenants/{theirs}/usage", headers=sent)
        missing = await service.http.get(f"/tenants/{uuid4()}/usage", headers=sent)
        assert (forbidden.status_code, forbidden.json()["detail"]) == (
            missing.status_code,
            missing.json()["detail"],
        )

    @pytest.mark.parametrize("role", [Role.USER, Role.TENANT_ADMIN])
    async def test_members_read_their_own_tenants_usage(
        self, service: RunningService, role: Role
    ) -> None:
        tenant = (await service.new_tenant()).tenant_id
        for path in USAGE_READS:
            response = await service.http.get(
                f"/tenants/{tenant}/usage{path}", headers=headers(service.settings, tenant, role)
            )
            # billing figures are for the tenant's admins only
            admin_only = path == "/invoice-preview" and role == Role.USER
            assert response.status_code == (403 if admin_only else 200), (path, response.text)

    async def test_a_platform_admin_reads_any_tenant(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        response = await service.http.get(
            f"/tenants/{tenant}/usage", headers=headers(service.settings)
        )
        assert response.status_code == 200, response.text

    @pytest.mark.parametrize(
        ("scopes", "status"),
        [(set(), 403), ({"usage:write"}, 403), ({"usage:read"}, 200), ({"tenant:read"}, 200)],
    )
    async def test_an_api_key_needs_the_usage_read_scope(
        self, service: RunningService, scopes: set[str], status: int
    ) -> None:
        tenant = (await service.new_tenant()).tenant_id
        principal = Principal(
            subject="key-1",
            role=Role.USER,
            tenant_id=tenant,
            scopes=frozenset(scopes),
            via="api_key",
        )
        token = mint_internal_token(service.settings, principal)

        response = await service.http.get(
            f"/tenants/{tenant}/usage", headers={"authorization": f"Bearer {token}"}
        )
        assert response.status_code == status, response.text

    @pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic YWRhOmFkYQ=="])
    async def test_no_valid_token_no_usage(
        self, service: RunningService, authorization: str | None
    ) -> None:
        tenant = (await service.new_tenant()).tenant_id
        sent = {"authorization": authorization} if authorization else {}

        response = await service.http.get(f"/tenants/{tenant}/usage", headers=sent)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
