"""An in-memory tenant directory, rebuilt from the compacted ``tenant.state`` topic.

Services that need to know tenants (their slug, plan and status) without
calling tenant-svc keep one: at start it reads ``tenant.state`` from the
beginning (no consumer group: every replica reads everything), is ``ready``
once it has caught up with the end offsets it saw at start, then follows
new snapshots. A snapshot older than the one held (lower version) is
ignored, so redelivery and reordering across restarts are harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, TopicPartition

from stellara_contracts import EventDecodeError, decode_event, topics
from stellara_contracts.events import TenantSnapshot, TenantSnapshotEvent, TenantStatus

log = logging.getLogger(__name__)

Listener = Callable[[TenantSnapshot, TenantSnapshot | None], Any]


@dataclass
class TenantDirectory:
    bootstrap_servers: str
    topic: str = topics.TENANT_STATE
    _by_id: dict[UUID, TenantSnapshot] = field(default_factory=dict)
    _by_slug: dict[str, UUID] = field(default_factory=dict)
    _listeners: list[Listener] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    # ------------------------------------------------------------------ reads
    def get(self, tenant_id: UUID) -> TenantSnapshot | None:
        return self._by_id.get(tenant_id)

    def by_slug(self, slug: str) -> TenantSnapshot | None:
        tenant_id = self._by_slug.get(slug)
        return self._by_id.get(tenant_id) if tenant_id else None

    def resolve(self, ref: str) -> TenantSnapshot | None:
        """A tenant by id (as text) or by slug."""
        try:
            return self.get(UUID(ref))
        except ValueError:
            return self.by_slug(ref)

    def is_active(self, tenant_id: UUID) -> bool:
        tenant = self.get(tenant_id)
        return tenant is not None and tenant.status == TenantStatus.ACTIVE

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> list[TenantSnapshot]:
        return list(self._by_id.values())

    # ------------------------------------------------------------------ writes
    def on_change(self, listener: Listener) -> None:
        """Call ``listener(new, old)`` after every applied snapshot (sync or async)."""
        self._listeners.append(listener)

    def apply(self, snapshot: TenantSnapshot) -> bool:
        """Apply a snapshot unless an equal or newer version is held; True if applied."""
        current = self._by_id.get(snapshot.tenant_id)
        if current is not None and current.version >= snapshot.version:
            return False
        if current is not None and current.slug != snapshot.slug:
            self._by_slug.pop(current.slug, None)
        self._by_id[snapshot.tenant_id] = snapshot
        self._by_slug[snapshot.slug] = snapshot.tenant_id
        for listener in self._listeners:
            result = listener(snapshot, current)
            if asyncio.iscoroutine(result):
                asyncio.ensure_future(result)  # noqa: RUF006 - listeners are fire-and-forget
        return True

    async def wait_ready(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self.ready.wait(), timeout)

    # ------------------------------------------------------------------ following the topic
    async def run(self) -> None:
        """Read the topic from the beginning, then follow it (a runtime background task)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            group_id=None,
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end = await consumer.end_offsets(partitions)
            if all(offset == 0 for offset in end.values()):
                self.ready.set()
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=1000)
                for records in batch.values():
                    for record in records:
                        self._apply_record(record.value)
                if not self.ready.is_set() and await _caught_up(consumer, end):
                    log.info("tenant directory caught up: %d tenants", len(self._by_id))
                    self.ready.set()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        for _ in range(100):
            await consumer._client.force_metadata_update()
            found = consumer.partitions_for_topic(self.topic)
            if found:
                return [TopicPartition(self.topic, p) for p in sorted(found)]
            await asyncio.sleep(0.2)
        raise RuntimeError(f"topic {self.topic} does not exist")

    def _apply_record(self, value: bytes | None) -> None:
        if value is None:  # a tombstone: compaction removed the tenant
            return
        try:
            event = decode_event(topics.TENANT_STATE, value)
        except EventDecodeError as exc:
            log.warning("skipping an undecodable tenant snapshot: %s", exc)
            return
        if isinstance(event, TenantSnapshotEvent):
            self.apply(event.data)


async def _caught_up(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return False
    return True
