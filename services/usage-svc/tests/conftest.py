from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from stellara_kit.migrations import upgrade_async
from stellara_kit.testing import Infrastructure, TestDatabase, running_app
from usage_svc.main import create_app
from usage_svc.migrate import MIGRATIONS
from usage_svc.settings import Settings


@pytest_asyncio.fixture
async def settings(
    infrastructure: Infrastructure, topic_prefix: str, test_database: TestDatabase
) -> Settings:
    await upgrade_async(MIGRATIONS, test_database.owner_url)
    return Settings(
        environment="test",
        database_url=test_database.runtime_url,
        migration_database_url=test_database.owner_url,
        kafka_bootstrap_servers=infrastructure.kafka_bootstrap,
        topic_prefix=topic_prefix,
        consumer_group=f"{topic_prefix}usage-svc",
        log_json=False,
    )


@pytest_asyncio.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The service running in-process on real Kafka and PostgreSQL."""
    async with running_app(create_app(settings)) as http:
        yield http
