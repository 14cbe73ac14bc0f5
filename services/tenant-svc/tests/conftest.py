from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

import httpx
import pytest_asyncio
from aiokafka import AIOKafkaConsumer

from stellara_contracts import CloudEvent, decode_event
from stellara_contracts.events import Role
from stellara_kit.migrations import upgrade_async
from stellara_kit.testing import (
    Infrastructure,
    TestDatabase,
    auth_headers,
    produce_raw,
    running_app,
)
from tenant_svc.main import create_app
from tenant_svc.migrate import MIGRATIONS
from tenant_svc.settings import Settings


@pytest_asyncio.fixture
async def settings(
    infrastructure: Infrastructure, topic_prefix: str, test_database: TestDatabase
) -> Settings:
    """HTTP-only settings (no subscribers: starting consumers costs a group join per test)."""
    await upgrade_async(MIGRATIONS, test_database.owner_url)
    return Settings(
        environment="test",
        database_url=test_database.runtime_url,
        migration_database_url=test_database.owner_url,
        kafka_bootstrap_servers=infrastructure.kafka_bootstrap,
        topic_prefix=topic_prefix,
        consumer_group=f"{topic_prefix}tenant-svc",
        log_json=False,
        consume_events=False,
        consumer_retry_backoff_ms=50,
    )


@pytest_asyncio.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The service running in-process on real Kafka and PostgreSQL (HTTP and outbox relay)."""
    async with running_app(create_app(settings)) as http:
        yield http


@pytest_asyncio.fixture
async def consuming_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The whole service, its Kafka subscribers included."""
    full = settings.model_copy(update={"consume_events": True})
    async with running_app(create_app(full)) as http:
        yield http


class Kit:
    """What most tests need: the service's client, tokens for each role, tenants, topics."""

    def __init__(self, client: httpx.AsyncClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def admin(self) -> dict[str, str]:
        return auth_headers(self.settings, role=Role.PLATFORM_ADMIN, subject="operator")

    def tenant_admin(self, tenant_id: str | UUID, subject: str = "ada") -> dict[str, str]:
        return auth_headers(
            self.settings, role=Role.TENANT_ADMIN, tenant_id=UUID(str(tenant_id)), subject=subject
        )

    def user(self, tenant_id: str | UUID, subject: str = "alan") -> dict[str, str]:
        return auth_headers(
            self.settings, role=Role.USER, tenant_id=UUID(str(tenant_id)), subject=subject
        )

    async def create_tenant(self, slug: str = "acme", **fields: Any) -> dict[str, Any]:
        body = {"name": fields.pop("name", slug.title()), "slug": slug, **fields}
        response = await self.client.post("/tenants", json=body, headers=self.admin())
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def active_tenant(self, slug: str = "acme", **fields: Any) -> dict[str, Any]:
        tenant = await self.create_tenant(slug, **fields)
        response = await self.client.post(f"/tenants/{tenant['id']}/activate", headers=self.admin())
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def publish(self, logical_topic: str, *records: CloudEvent | tuple[bytes, bytes]) -> None:
        """Put events (or raw ``(key, value)`` records) on the real topic, in this order."""
        await produce_raw(
            self.settings.kafka_bootstrap_servers,
            self.settings.topic(logical_topic),
            [r if isinstance(r, tuple) else (r.key, r.to_json()) for r in records],
        )

    async def received(self, tenant_id: str | UUID) -> list[dict[str, Any]]:
        """What the service recorded about events other services sent on the tenant."""
        response = await self.client.get(
            f"/tenants/{tenant_id}/received-events", headers=self.admin()
        )
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    def reader(self, logical_topic: str) -> TopicReader:
        return TopicReader(
            self.settings.kafka_bootstrap_servers,
            self.settings.topic(logical_topic),
            logical_topic,
        )


@pytest_asyncio.fixture
async def kit(client: httpx.AsyncClient, settings: Settings) -> Kit:
    return Kit(client, settings)


@pytest_asyncio.fixture
async def consuming_kit(consuming_client: httpx.AsyncClient, settings: Settings) -> Kit:
    """A Kit around the whole service, its Kafka subscribers included (use instead of ``kit``:
    two apps on one database would leave one relay standing by)."""
    return Kit(consuming_client, settings)


@pytest_asyncio.fixture
async def kit_of() -> Callable[[httpx.AsyncClient, Settings], Kit]:
    """A Kit around another app of the test (tests that start the service themselves)."""
    return Kit


class TopicReader:
    """Reads a real topic from the beginning and keeps what it read."""

    def __init__(self, bootstrap: str, topic: str, logical: str) -> None:
        self.topic = topic
        self.logical = logical
        self.consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        self.records: list[tuple[bytes | None, CloudEvent]] = []

    async def __aenter__(self) -> TopicReader:
        await self.consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def until(
        self,
        condition: Callable[[list[tuple[bytes | None, CloudEvent]]], bool],
        timeout: float = 20.0,
    ) -> list[tuple[bytes | None, CloudEvent]]:
        deadline = time.monotonic() + timeout
        while not condition(self.records):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not seen on {self.topic} within {timeout} s; read: "
                    f"{[e.type for _, e in self.records]}"
                )
            batch = await self.consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    self.records.append((record.key, decode_event(self.logical, record.value)))
        return self.records

    async def of_tenant(
        self, tenant_id: str | UUID, *types: str, timeout: float = 20.0
    ) -> list[tuple[bytes | None, CloudEvent]]:
        """Wait until every type of ``types`` was seen for the tenant; its records so far."""
        wanted = str(tenant_id)

        def mine(
            records: list[tuple[bytes | None, CloudEvent]],
        ) -> list[tuple[bytes | None, CloudEvent]]:
            return [(k, e) for k, e in records if str(e.tenantid) == wanted]

        def seen(records: list[tuple[bytes | None, CloudEvent]]) -> bool:
            kinds = [e.type for _, e in mine(records)]
            return all(kinds.count(t) >= types.count(t) for t in set(types))

        return mine(await self.until(seen, timeout))
