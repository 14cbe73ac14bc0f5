"""The consumer helper on a real broker: commit after handling, bounded retries, DLQ."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker

from stellara_contracts import CloudEvent, new_event, topics
from stellara_contracts.events import UsageRecorded
from stellara_kit.consumer import RetryPolicy, subscribe_events
from stellara_kit.testing import Infrastructure, consume, produce_raw, wait_for


def usage_record(tenant: Any, value: float) -> CloudEvent:
    return new_event(
        UsageRecorded(
            tenant_id=tenant, metric="api_calls", value=value, occurred_at=datetime.now(UTC)
        ),
        source="kit-test",
    )


async def committed_total(infra: Infrastructure, topic: str, group: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, group_id=group)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        total = 0
        for p in partitions:
            total += await consumer.committed(TopicPartition(topic, p)) or 0
        return total
    finally:
        await consumer.stop()


class TestConsumer:
    async def test_failing_handler_is_retried_then_dead_lettered_and_the_rest_flow(
        self, infrastructure: Infrastructure, topic_prefix: str
    ) -> None:
        topic = f"{topic_prefix}{topics.USAGE_RECORDED}"
        group = f"{topic_prefix}consumer-test"
        tenant = uuid4()
        good_before, poison, good_after = (
            usage_record(tenant, 1),
            usage_record(tenant, 13),
            usage_record(tenant, 2),
        )
        attempts: dict[Any, int] = {}

        async def handler(event: CloudEvent) -> None:
            attempts[event.id] = attempts.get(event.id, 0) + 1
            if event.data.value == 13:
                raise ValueError("thirteen is unlucky")

        broker = KafkaBroker(infrastructure.kafka_bootstrap)
        subscribe_events(
            broker,
            topic=topic,
            logical_topic=topics.USAGE_RECORDED,
            group_id=group,
            handler=handler,
            retry=RetryPolicy(max_retries=2, backoff_seconds=0.05),
        )
        await broker.start()
        try:
            await produce_raw(
                infrastructure.kafka_bootstrap,
                topic,
                [(e.key, e.to_json()) for e in (good_before, poison)]
                + [(str(tenant).encode(), b"{not json")]
                + [(good_after.key, good_after.to_json())],
                headers=[("origin", b"kit-test")],
            )
            await wait_for(lambda: _value(attempts.get(good_after.id)), timeout=30)
        finally:
            await broker.stop()

        assert attempts == {good_before.id: 1, poison.id: 3, good_after.id: 1}
        dead = await consume(infrastructure.kafka_bootstrap, topics.dlq_topic(topic), count=2)
        by_reason = {dict(r.headers)["x-dlq-reason"].decode(): r for r in dead}
        assert set(by_reason) == {"handler_failed", "malformed"}
        failed = by_reason["handler_failed"]
        headers = {k: v.decode() for k, v in failed.headers}
        assert failed.value == poison.to_json()
        assert failed.key == poison.key
        assert "thirteen is unlucky" in headers["x-dlq-error"]
        assert headers["x-dlq-attempts"] == "3"
        assert headers["origin"] == "kit-test"
        assert headers["x-dlq-original-topic"] == topic
        assert by_reason["malformed"].value == b"{not json"
        assert await committed_total(infrastructure, topic, group) == 4

    async def test_a_lost_database_is_waited_for_not_dead_lettered(
        self, infrastructure: Infrastructure, topic_prefix: str
    ) -> None:
        """A handler failing because its database is gone (more often than the retries
        allow) is retried until it is back; the record is handled, nothing dead-lettered."""
        import asyncpg
        from sqlalchemy.exc import DBAPIError

        topic = f"{topic_prefix}{topics.USAGE_RECORDED}"
        group = f"{topic_prefix}outage"
        event = usage_record(uuid4(), 7)
        attempts: list[int] = []

        async def handler(received: CloudEvent) -> None:
            attempts.append(1)
            if len(attempts) == 1:
                raise ConnectionResetError(104, "Connection reset by peer")
            if len(attempts) <= 4:
                raise DBAPIError(
                    "INSERT ...", None, asyncpg.CannotConnectNowError("the database is starting")
                )

        broker = KafkaBroker(infrastructure.kafka_bootstrap)
        subscribe_events(
            broker,
            topic=topic,
            logical_topic=topics.USAGE_RECORDED,
            group_id=group,
            handler=handler,
            retry=RetryPolicy(max_retries=1, backoff_seconds=0.05),
        )
        await broker.start()
        try:
            await produce_raw(infrastructure.kafka_bootstrap, topic, [(event.key, event.to_json())])
            await wait_for(
                lambda: _value(len(attempts) if len(attempts) >= 5 else None), timeout=30
            )
            await wait_for(
                lambda: committed_total(infrastructure, topic, group),
                until=lambda n: n == 1,
                timeout=30,
            )
        finally:
            await broker.stop()
        assert len(attempts) == 5
        consumer = AIOKafkaConsumer(
            topics.dlq_topic(topic),
            bootstrap_servers=infrastructure.kafka_bootstrap,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            assert not await consumer.getmany(timeout_ms=1000)
        finally:
            await consumer.stop()

    async def test_offsets_are_not_committed_before_handling(
        self, infrastructure: Infrastructure, topic_prefix: str
    ) -> None:
        """A handler that never finishes leaves the offset uncommitted: a restart redelivers."""
        import asyncio

        topic = f"{topic_prefix}{topics.USAGE_RECORDED}"
        group = f"{topic_prefix}slow"
        started = asyncio.Event()

        async def stuck(event: CloudEvent) -> None:
            started.set()
            await asyncio.sleep(3600)

        broker = KafkaBroker(infrastructure.kafka_bootstrap)
        subscribe_events(
            broker,
            topic=topic,
            logical_topic=topics.USAGE_RECORDED,
            group_id=group,
            handler=stuck,
            retry=RetryPolicy(max_retries=0),
        )
        await broker.start()
        event = usage_record(uuid4(), 5)
        try:
            await produce_raw(infrastructure.kafka_bootstrap, topic, [(event.key, event.to_json())])
            await asyncio.wait_for(started.wait(), 30)
        finally:
            await broker.stop()
        assert await committed_total(infrastructure, topic, group) == 0

        seen: list[Any] = []

        async def record(event: CloudEvent) -> None:
            seen.append(event.id)

        broker = KafkaBroker(infrastructure.kafka_bootstrap)
        subscribe_events(
            broker,
            topic=topic,
            logical_topic=topics.USAGE_RECORDED,
            group_id=group,
            handler=record,
            retry=RetryPolicy(max_retries=0),
        )
        await broker.start()
        try:
            await wait_for(lambda: _value(seen), timeout=30)
        finally:
            await broker.stop()
        assert seen == [event.id]


async def _value(value: Any) -> Any:
    return value


class TestEventTypes:
    async def test_an_unknown_stellara_type_is_dead_lettered_and_a_foreign_one_ignored(
        self, infrastructure: Infrastructure, topic_prefix: str
    ) -> None:
        from prometheus_client import CollectorRegistry

        from stellara_kit.consumer import ConsumerMetrics

        topic = f"{topic_prefix}{topics.USAGE_RECORDED}"
        tenant = uuid4()
        good = usage_record(tenant, 1)
        typo = good.to_json().replace(b"stellara.usage.recorded.v1", b"stellara.usage.recorded.v9")
        foreign = b'{"specversion": "1.0", "type": "com.example.order.placed", "id": "42"}'
        seen: list[Any] = []

        async def handler(event: CloudEvent) -> None:
            seen.append(event.id)

        registry = CollectorRegistry()
        broker = KafkaBroker(infrastructure.kafka_bootstrap)
        subscribe_events(
            broker,
            topic=topic,
            logical_topic=topics.USAGE_RECORDED,
            group_id=f"{topic_prefix}types",
            handler=handler,
            retry=RetryPolicy(max_retries=0),
            metrics=ConsumerMetrics(registry),
        )
        await broker.start()
        try:
            await produce_raw(
                infrastructure.kafka_bootstrap,
                topic,
                [(good.key, typo), (good.key, foreign), (good.key, good.to_json())],
            )

            async def handled() -> list[Any]:
                return seen

            await wait_for(handled, timeout=30)
        finally:
            await broker.stop()

        assert seen == [good.id]  # the handler never sees the other two
        [dead] = await consume(infrastructure.kafka_bootstrap, topics.dlq_topic(topic), count=1)
        assert dead.value == typo
        assert dict(dead.headers)["x-dlq-reason"] == b"unknown_type"
        assert b"stellara.usage.recorded.v9" in dict(dead.headers)["x-dlq-error"]
        labels = {"topic": topics.USAGE_RECORDED}
        assert (
            registry.get_sample_value(
                "stellara_events_handled_total", labels | {"outcome": "ignored"}
            )
            == 1
        )
        assert (
            registry.get_sample_value(
                "stellara_events_dead_lettered_total", labels | {"reason": "unknown_type"}
            )
            == 1
        )
