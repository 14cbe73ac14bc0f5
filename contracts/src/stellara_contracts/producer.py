"""Emitting usage from a platform service.

Platform services that meter their own usage send ``UsageRecorded`` events
straight to Kafka. This helper gets the details right: the CloudEvents
envelope in structured mode (``content-type: application/cloudevents+json``),
the tenant id as the Kafka key (so one tenant's events stay in order), a
stable event id (the dedup key: reuse it when you retry), and an
idempotent producer that waits for every in-sync replica.

Example::

    async with UsageEmitter("localhost:9092", source="billing-worker") as usage:
        await usage.emit(tenant_id, "workflow_runs", 1, properties={"workflow": "nightly"})
        await usage.flush()

The emitter batches in the background; ``emit`` returns once the record is
queued, ``flush`` (and leaving the ``async with``) once Kafka has
acknowledged every queued record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any
from uuid import UUID, uuid4

from aiokafka import AIOKafkaProducer

from stellara_contracts import topics
from stellara_contracts.binding import record_headers
from stellara_contracts.catalogue import new_event
from stellara_contracts.envelope import utcnow
from stellara_contracts.events import UsageRecorded


def usage_record(
    tenant_id: UUID,
    metric: str,
    value: float,
    *,
    source: str,
    occurred_at: datetime | None = None,
    properties: Mapping[str, str | int | float | bool] | None = None,
    event_id: UUID | None = None,
) -> tuple[bytes, bytes]:
    """The Kafka ``(key, value)`` of one usage event, validated against the contract."""
    data = UsageRecorded(
        tenant_id=tenant_id,
        metric=metric,
        value=value,
        occurred_at=occurred_at or utcnow(),
        properties=dict(properties or {}),
    )
    event = new_event(data, source=source, id=event_id or uuid4())
    return event.key, event.to_json()


class UsageEmitter:
    """Sends UsageRecorded events to ``usage.recorded`` with an idempotent producer."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        source: str,
        topic: str = topics.USAGE_RECORDED,
        **producer_options: Any,
    ) -> None:
        self.source = source
        self.topic = topic
        options: dict[str, Any] = {"linger_ms": 5, "max_batch_size": 256 * 1024}
        options.update(producer_options)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            enable_idempotence=True,  # implies acks="all"
            **options,
        )
        self._pending: set[asyncio.Future[Any]] = set()

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        try:
            await self.flush()
        finally:
            await self._producer.stop()

    async def __aenter__(self) -> UsageEmitter:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def emit(
        self,
        tenant_id: UUID,
        metric: str,
        value: float,
        *,
        occurred_at: datetime | None = None,
        properties: Mapping[str, str | int | float | bool] | None = None,
        event_id: UUID | None = None,
    ) -> UUID:
        """Queue one usage event; returns its id (reuse it to retry without double counting)."""
        event_id = event_id or uuid4()
        key, value_bytes = usage_record(
            tenant_id,
            metric,
            value,
            source=self.source,
            occurred_at=occurred_at,
            properties=properties,
            event_id=event_id,
        )
        future = await self._producer.send(
            self.topic, value_bytes, key=key, headers=record_headers()
        )
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return event_id

    async def flush(self) -> None:
        """Wait until Kafka acknowledged every queued event (raises if one failed)."""
        await self._producer.flush()
        pending, self._pending = list(self._pending), set()
        for future in pending:
            await future
