from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from gateway.main import create_app
from gateway.settings import Settings
from stellara_kit.testing import Infrastructure, running_app


@pytest_asyncio.fixture
async def settings(infrastructure: Infrastructure, topic_prefix: str) -> Settings:
    return Settings(
        environment="test",
        kafka_bootstrap_servers=infrastructure.kafka_bootstrap,
        topic_prefix=topic_prefix,
        consumer_group=f"{topic_prefix}gateway",
        log_json=False,
    )


@pytest_asyncio.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The service running in-process on real Kafka and PostgreSQL."""
    async with running_app(create_app(settings)) as http:
        yield http
