"""What the gateway does with Kafka.

It consumes ``tenant.state`` into the in-memory tenant directory (no
consumer group: every replica reads the whole compacted topic) and
publishes ``usage.recorded`` — events sent over HTTP and its own
``api_calls`` metering — with an idempotent producer (``acks=all``), in the
CloudEvents Kafka binding's structured mode (``content-type:
application/cloudevents+json``, key = tenant id).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from gateway.settings import Settings
from stellara_contracts import record_headers, topics
from stellara_kit.tenant_directory import TenantDirectory

KafkaRecord = tuple[bytes, bytes]


def tenant_directory(settings: Settings) -> TenantDirectory:
    """The directory of tenants, following this deployment's ``tenant.state`` topic."""
    return TenantDirectory(settings.kafka_bootstrap_servers, settings.topic(topics.TENANT_STATE))


class NotAcknowledged(Exception):
    """Kafka did not acknowledge a record in time."""


class UsagePublisher:
    """Publishes UsageRecorded records to ``usage.recorded`` (key = tenant id)."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic(topics.USAGE_RECORDED)
        self.ack_timeout = settings.kafka_ack_timeout_seconds
        self._options = {
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "client_id": f"{settings.service_name}-usage",
            "enable_idempotence": True,  # implies acks="all"
            "linger_ms": settings.kafka_linger_ms,
            "max_batch_size": 256 * 1024,
            "request_timeout_ms": int(settings.kafka_ack_timeout_seconds * 1000),
        }
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(**self._options)
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def publish(self, records: Sequence[KafkaRecord]) -> list[BaseException | None]:
        """Send every record and wait for Kafka's acknowledgements.

        Returns, per record, None when acknowledged or the error. Records
        not acknowledged within the timeout may still arrive later: callers
        retry with the same event ids, which consumers deduplicate.
        """
        producer = self._producer
        if producer is None:
            return [NotAcknowledged("the producer is not running")] * len(records)
        deadline = time.monotonic() + self.ack_timeout
        futures: list[asyncio.Future[object]] = []
        try:
            async with asyncio.timeout(self.ack_timeout):
                for index, (key, value) in enumerate(records, 1):
                    futures.append(
                        await producer.send(self.topic, value, key=key, headers=record_headers())
                    )
                    if index % 100 == 0:
                        await asyncio.sleep(0)  # a big batch must not hold up requests
        except TimeoutError:
            pass
        if futures:
            await asyncio.wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        results: list[BaseException | None] = []
        for index in range(len(records)):
            if index >= len(futures) or not futures[index].done():
                results.append(NotAcknowledged("Kafka did not acknowledge in time"))
            elif futures[index].cancelled():
                results.append(NotAcknowledged("the send was cancelled"))
            else:
                results.append(futures[index].exception())
        return results
