from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from onboarding_svc.main import create_app
from onboarding_svc.migrate import MIGRATIONS
from onboarding_svc.settings import Settings
from stellara_kit.migrations import upgrade_async
from stellara_kit.testing import Infrastructure, TestDatabase, running_app


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
        consumer_group=f"{topic_prefix}onboarding-svc",
        log_json=False,
    )


@pytest_asyncio.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The service running in-process on real Kafka and PostgreSQL."""
    async with running_app(create_app(settings)) as http:
        yield http
