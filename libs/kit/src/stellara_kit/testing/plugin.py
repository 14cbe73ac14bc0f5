"""Pytest fixtures every service's tests get (registered as the ``stellara`` plugin).

- ``infrastructure`` (session): real Kafka and PostgreSQL, found or started once.
- ``test_database``: a fresh database per test, with an owner and a runtime role.
- ``topic_prefix``: fresh topic names per test, created with their ``.dlq`` twins.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from stellara_contracts import topics
from stellara_kit.testing.infra import (
    Infrastructure,
    TestDatabase,
    create_test_database,
    discover,
    drop_test_database,
)

TEST_PARTITIONS = 2


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[Infrastructure]:
    infra, stop = discover()
    try:
        yield infra
    finally:
        if stop is not None:
            stop()


@pytest_asyncio.fixture
async def test_database(infrastructure: Infrastructure) -> AsyncIterator[TestDatabase]:
    database = await create_test_database(infrastructure)
    try:
        yield database
    finally:
        await drop_test_database(infrastructure, database)


@pytest_asyncio.fixture
async def topic_prefix(infrastructure: Infrastructure) -> AsyncIterator[str]:
    async with fresh_topics(infrastructure) as prefix:
        yield prefix


@contextlib.asynccontextmanager
async def fresh_topics(infrastructure: Infrastructure) -> AsyncIterator[str]:
    """Every topic (and its DLQ) under a new prefix, deleted afterwards; yields the prefix."""
    from stellara_kit.kafka_admin import delete_topics, ensure_topics

    prefix = f"t{uuid.uuid4().hex[:10]}."
    names = [f"{prefix}{t}" for t in topics.ALL_TOPICS]
    names += [f"{prefix}{topics.dlq_topic(t)}" for t in topics.ALL_TOPICS]
    await ensure_topics(
        infrastructure.kafka_bootstrap,
        names,
        partitions=TEST_PARTITIONS,
        compacted={f"{prefix}{t}" for t in topics.COMPACTED_TOPICS},
    )
    try:
        yield prefix
    finally:
        # leftover topics in a test broker are harmless
        with contextlib.suppress(Exception):
            await delete_topics(infrastructure.kafka_bootstrap, names)
