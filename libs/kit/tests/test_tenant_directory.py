"""The tenant directory rebuilds from the compacted topic and follows it."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from uuid import uuid4

from stellara_contracts import new_event, topics
from stellara_contracts.events import TenantSnapshot, TenantStatus
from stellara_kit.tenant_directory import TenantDirectory
from stellara_kit.testing import Infrastructure, produce_raw, wait_for


def snapshot(tenant, slug: str, version: int, status: TenantStatus) -> TenantSnapshot:
    now = datetime.now(UTC)
    return TenantSnapshot(
        tenant_id=tenant,
        slug=slug,
        name=slug.title(),
        plan="free",
        status=status,
        version=version,
        created_at=now,
        updated_at=now,
    )


async def publish(infra: Infrastructure, topic: str, *snaps: TenantSnapshot) -> None:
    events = [new_event(s, source="test") for s in snaps]
    await produce_raw(infra.kafka_bootstrap, topic, [(e.key, e.to_json()) for e in events])


class TestTenantDirectory:
    async def test_rebuilds_from_topic_then_follows_changes(
        self, infrastructure: Infrastructure, topic_prefix: str
    ) -> None:
        topic = f"{topic_prefix}{topics.TENANT_STATE}"
        acme, globex = uuid4(), uuid4()
        await publish(
            infrastructure,
            topic,
            snapshot(acme, "acme", 1, TenantStatus.PENDING),
            snapshot(acme, "acme", 2, TenantStatus.ACTIVE),
            snapshot(globex, "globex", 1, TenantStatus.PENDING),
            snapshot(acme, "acme", 1, TenantStatus.PENDING),  # a stale redelivery
        )
        directory = TenantDirectory(infrastructure.kafka_bootstrap, topic)
        task = asyncio.create_task(directory.run())
        try:
            await directory.wait_ready(30)
            assert directory.is_active(acme)
            assert directory.by_slug("globex").tenant_id == globex  # type: ignore[union-attr]
            assert directory.resolve(str(acme)).version == 2  # type: ignore[union-attr]
            assert directory.resolve("nobody") is None

            await publish(infrastructure, topic, snapshot(acme, "acme", 3, TenantStatus.SUSPENDED))
            await wait_for(
                lambda: _status(directory, acme), until=lambda s: s == TenantStatus.SUSPENDED
            )
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def test_empty_topic_is_ready_at_once(
        self, infrastructure: Infrastructure, topic_prefix: str
    ) -> None:
        directory = TenantDirectory(
            infrastructure.kafka_bootstrap, f"{topic_prefix}{topics.TENANT_STATE}"
        )
        task = asyncio.create_task(directory.run())
        try:
            await directory.wait_ready(30)
            assert len(directory) == 0
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _status(directory: TenantDirectory, tenant) -> TenantStatus | None:
    found = directory.get(tenant)
    return found.status if found else None
