"""The CloudEvents Kafka binding on a real broker: structured mode, key = tenant id, murmur2."""

from __future__ import annotations

from uuid import uuid4

from aiokafka.partitioner import murmur2

from stellara_contracts import CLOUDEVENTS_JSON, decode_event, topics
from stellara_contracts.events import UsageRecordedEvent
from stellara_contracts.producer import UsageEmitter
from stellara_kit.testing import Infrastructure, consume
from stellara_kit.testing.plugin import TEST_PARTITIONS


async def test_the_emitter_sends_structured_cloudevents_keyed_and_partitioned_by_tenant(
    infrastructure: Infrastructure, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}{topics.USAGE_RECORDED}"
    tenants = [uuid4() for _ in range(6)]
    async with UsageEmitter(
        infrastructure.kafka_bootstrap, source="binding-test", topic=topic
    ) as usage:
        ids = [await usage.emit(t, "api_calls", 1) for t in tenants]

    records = await consume(infrastructure.kafka_bootstrap, topic, count=len(tenants))
    assert sorted(str(i) for i in ids) == sorted(
        str(decode_event(topics.USAGE_RECORDED, r.value).id) for r in records
    )
    for record in records:
        event = decode_event(topics.USAGE_RECORDED, record.value)
        assert isinstance(event, UsageRecordedEvent)
        assert list(record.headers) == [("content-type", CLOUDEVENTS_JSON.encode())]
        assert record.key == str(event.tenantid).encode()
        # Kafka's default (Java) partitioner: murmur2 of the key, positive, modulo the count;
        # what kcat/librdkafka do with -X partitioner=murmur2_random
        assert record.partition == (murmur2(record.key) & 0x7FFFFFFF) % TEST_PARTITIONS
