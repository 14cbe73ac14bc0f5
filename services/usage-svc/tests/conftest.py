from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from stellara_contracts.events import TenantSnapshot, TenantStatus
from stellara_kit.migrations import upgrade_async
from stellara_kit.testing import Infrastructure, TestDatabase, running_app
from stellara_kit.testing.infra import create_test_database, drop_test_database
from stellara_kit.testing.plugin import fresh_topics
from usage_svc.ingest.batch import IngestFaults
from usage_svc.main import create_app
from usage_svc.migrate import MIGRATIONS
from usage_svc.settings import Settings

from .helpers import Tenants, publish_tenants, snapshot, wait_for_tenant, wait_ready


def make_settings(
    infrastructure: Infrastructure, topic_prefix: str, test_database: TestDatabase, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": test_database.runtime_url,
        "migration_database_url": test_database.owner_url,
        "kafka_bootstrap_servers": infrastructure.kafka_bootstrap,
        "topic_prefix": topic_prefix,
        "consumer_group": f"{topic_prefix}usage-svc",
        "log_json": False,
        "db_pool_size": 4,
        "batch_max_wait_ms": 20,
        "ingest_session_timeout_ms": 6000,
        "unknown_tenant_grace_seconds": 0.2,
        "billing_close_interval_seconds": 3600,
        "retention_interval_seconds": 3600,
    }
    values.update(overrides)
    return Settings(**values)


@pytest_asyncio.fixture
async def settings(
    infrastructure: Infrastructure, topic_prefix: str, test_database: TestDatabase
) -> Settings:
    await upgrade_async(MIGRATIONS, test_database.owner_url)
    return make_settings(infrastructure, topic_prefix, test_database)


@pytest_asyncio.fixture
async def tenants(settings: Settings) -> Tenants:
    """Three tenants in tenant.state before the service starts."""
    known = Tenants(
        free=snapshot(plan="free"),
        starter=snapshot(plan="starter"),
        deleted=snapshot(plan="free", status=TenantStatus.DELETED),
    )
    await publish_tenants(settings, known.free, known.starter, known.deleted)
    return known


@pytest_asyncio.fixture
async def faults() -> IngestFaults:
    return IngestFaults()


@pytest_asyncio.fixture
async def app(settings: Settings, tenants: Tenants, faults: IngestFaults) -> FastAPI:
    return create_app(settings, faults=faults)


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The service running in-process on real Kafka and PostgreSQL, ready."""
    async with running_app(app) as http:
        await wait_ready(http)
        yield http


# --------------------------------------------------------------------- one service per module
@dataclass
class RunningService:
    """The service running for a whole test module; each test takes tenants of its own."""

    app: FastAPI
    http: httpx.AsyncClient
    settings: Settings
    database: TestDatabase

    async def new_tenant(
        self, plan: str = "starter", status: TenantStatus = TenantStatus.ACTIVE
    ) -> TenantSnapshot:
        """A tenant published to tenant.state, once the service knows it."""
        tenant = snapshot(plan=plan, status=status)
        await publish_tenants(self.settings, tenant)
        await wait_for_tenant(self.app, tenant.tenant_id)
        return tenant


@pytest_asyncio.fixture(scope="module")
async def service(
    request: pytest.FixtureRequest, infrastructure: Infrastructure
) -> AsyncIterator[RunningService]:
    """The service started once for the module (settings: the module's ``SERVICE_SETTINGS``)."""
    overrides: dict[str, Any] = getattr(request.module, "SERVICE_SETTINGS", {})
    database = await create_test_database(infrastructure)
    try:
        async with fresh_topics(infrastructure) as prefix:
            await upgrade_async(MIGRATIONS, database.owner_url)
            settings = make_settings(infrastructure, prefix, database, **overrides)
            app = create_app(settings)
            async with running_app(app) as http:
                await wait_ready(http)
                yield RunningService(app=app, http=http, settings=settings, database=database)
    finally:
        await drop_test_database(infrastructure, database)
