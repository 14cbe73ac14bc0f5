"""`stellara dlq show / replay` on real dead-letter topics."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaBroker

from stellara_contracts import CloudEvent, new_event, topics
from stellara_contracts.events import UsageRecorded
from stellara_kit.consumer import RetryPolicy, subscribe_events
from stellara_kit.testing import Infrastructure, consume, produce_raw, wait_for

STELLARA = str(Path(sys.executable).parent / "stellara")


async def stellara(*args: str, timeout: float = 90) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        STELLARA, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"stellara {' '.join(args)} did not end within {timeout} s") from None
    return proc.returncode or 0, stdout.decode(), stderr.decode()


async def replay(*args: str) -> dict[str, Any]:
    code, stdout, stderr = await stellara("dlq", "replay", "usage.recorded", "--json", *args)
    assert code == 0, stderr
    summary: dict[str, Any] = json.loads(stdout)
    return summary


async def record_count(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        return sum(end[tp] - begin[tp] for tp in tps)
    finally:
        await consumer.stop()


def usage_event(value: float) -> CloudEvent:
    return new_event(
        UsageRecorded(
            tenant_id=uuid4(), metric="api_calls", value=value, occurred_at=datetime.now(UTC)
        ),
        source="cli-test",
    )


async def test_show_then_replay_once(infrastructure: Infrastructure, topic_prefix: str) -> None:
    dlq = f"{topic_prefix}{topics.dlq_topic(topics.USAGE_RECORDED)}"
    headers = [
        ("x-dlq-reason", b"unknown_tenant"),
        ("x-dlq-error", b"tenant not known"),
        ("origin", b"t"),
    ]
    await produce_raw(
        infrastructure.kafka_bootstrap, dlq, [(b"k1", b"one"), (b"k2", b"two")], headers=headers
    )
    common = ["--prefix", topic_prefix, "--bootstrap", infrastructure.kafka_bootstrap]

    code, stdout, stderr = await stellara("dlq", "show", "usage.recorded", "--json", *common)
    assert code == 0, stderr
    rows = json.loads(stdout)
    assert [r["reason"] for r in rows] == ["unknown_tenant", "unknown_tenant"]
    assert rows[0]["error"] == "tenant not known"

    code, _, stderr = await stellara("dlq", "replay", "usage.recorded", *common)
    assert code == 0, stderr
    assert "replayed 2 records" in stderr
    code, _, stderr = await stellara("dlq", "replay", "usage.recorded", *common)
    assert "replayed 0 records" in stderr
    assert "sent by an earlier replay" in stderr

    replayed = await consume(
        infrastructure.kafka_bootstrap, f"{topic_prefix}{topics.USAGE_RECORDED}", count=2
    )
    assert sorted(r.value for r in replayed) == [b"one", b"two"]
    for record in replayed:
        names = dict(record.headers)
        assert names["origin"] == b"t"
        assert "x-dlq-reason" not in names and "x-dlq-error" not in names
        assert names["x-dlq-replay-count"] == b"1"
        assert names["x-dlq-replay-id"]


async def test_show_lists_the_newest_first(
    infrastructure: Infrastructure, topic_prefix: str
) -> None:
    dlq = f"{topic_prefix}{topics.dlq_topic(topics.USAGE_RECORDED)}"
    producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap)
    await producer.start()
    base = int(time.time() * 1000) - 60_000
    try:
        # oldest to newest, spread over both partitions
        for n in range(6):
            await producer.send_and_wait(
                dlq,
                f"record {n}".encode(),
                partition=(n * 5 % 2),
                timestamp_ms=base + n * 1000,
                headers=[("x-dlq-reason", b"unknown_tenant")],
            )
    finally:
        await producer.stop()
    common = ["--prefix", topic_prefix, "--bootstrap", infrastructure.kafka_bootstrap]

    code, stdout, stderr = await stellara(
        "dlq", "show", "usage.recorded", "--json", "--limit", "3", *common
    )
    assert code == 0, stderr
    assert [r["value"] for r in json.loads(stdout)] == ["record 5", "record 4", "record 3"]

    code, stdout, stderr = await stellara(
        "dlq", "show", "usage.recorded", "--json", "--limit", "2", "--oldest-first", *common
    )
    assert code == 0, stderr
    assert [r["value"] for r in json.loads(stdout)] == ["record 0", "record 1"]


@pytest_asyncio.fixture
async def refusing_consumer(
    infrastructure: Infrastructure, topic_prefix: str
) -> AsyncIterator[list[CloudEvent]]:
    """The kit's consumer on usage.recorded with a handler that always fails: whatever
    reaches it is dead-lettered again (handler_failed, or malformed when undecodable)."""
    seen: list[CloudEvent] = []

    async def always_fails(event: CloudEvent) -> None:
        seen.append(event)
        raise ValueError("this record can never be handled")

    broker = KafkaBroker(infrastructure.kafka_bootstrap)
    subscribe_events(
        broker,
        topic=f"{topic_prefix}{topics.USAGE_RECORDED}",
        logical_topic=topics.USAGE_RECORDED,
        group_id=f"{topic_prefix}refusing",
        handler=always_fails,
        retry=RetryPolicy(max_retries=0),
    )
    await broker.start()
    try:
        yield seen
    finally:
        await broker.stop()


class TestReplayOfRecordsThatFailAgain:
    async def test_a_replay_ends_and_the_dead_letters_stay_bounded(
        self,
        infrastructure: Infrastructure,
        topic_prefix: str,
        refusing_consumer: list[CloudEvent],
    ) -> None:
        bootstrap = infrastructure.kafka_bootstrap
        topic = f"{topic_prefix}{topics.USAGE_RECORDED}"
        dlq = f"{topic_prefix}{topics.dlq_topic(topics.USAGE_RECORDED)}"
        poison = usage_event(13)
        await produce_raw(bootstrap, topic, [(poison.key, poison.to_json()), (b"k", b"{not json")])
        await wait_for(lambda: record_count(bootstrap, dlq), until=lambda n: n == 2)
        common = ["--prefix", topic_prefix, "--bootstrap", bootstrap]

        first = await replay(*common)
        assert first["sent"] == {"handler_failed": 1}
        assert first["considered"] == 2
        (skipped,) = first["skipped"]
        assert skipped["reason"] == "malformed" and skipped["count"] == 1
        assert "permanent" in skipped["why"] and "--include-permanent" in skipped["why"]

        # the consumer refuses the replayed record once more; nothing sends it back again
        await wait_for(lambda: record_count(bootstrap, dlq), until=lambda n: n == 3)
        await asyncio.sleep(3)
        assert await record_count(bootstrap, dlq) == 3
        assert len(refusing_consumer) == 2  # the original and the one replay

        # the next run sends the returned record once; what it sent before it passes over
        second = await replay(*common)
        assert second["sent"] == {"handler_failed": 1}
        assert second["considered"] == 3
        assert {s["why"].split(" (")[0]: s["count"] for s in second["skipped"]} == {
            "sent by an earlier replay": 1,
            next(s["why"] for s in first["skipped"]).split(" (")[0]: 1,
        }
        await wait_for(lambda: record_count(bootstrap, dlq), until=lambda n: n == 4)

        code, stdout, stderr = await stellara("dlq", "show", "usage.recorded", "--json", *common)
        assert code == 0, stderr
        newest = json.loads(stdout)[0]
        assert newest["reason"] == "handler_failed" and newest["replayed"] == 2

    async def test_a_permanent_reason_is_sent_when_named(
        self,
        infrastructure: Infrastructure,
        topic_prefix: str,
        refusing_consumer: list[CloudEvent],
    ) -> None:
        bootstrap = infrastructure.kafka_bootstrap
        topic = f"{topic_prefix}{topics.USAGE_RECORDED}"
        dlq = f"{topic_prefix}{topics.dlq_topic(topics.USAGE_RECORDED)}"
        await produce_raw(bootstrap, topic, [(b"k", b"{not json")])
        await wait_for(lambda: record_count(bootstrap, dlq), until=lambda n: n == 1)
        common = ["--prefix", topic_prefix, "--bootstrap", bootstrap]

        dry = await replay("--dry-run", *common)
        assert dry["sent"] == {} and dry["skipped_total"] == 1

        sent = await replay("--reason", "malformed", *common)
        assert sent["sent"] == {"malformed": 1}
        await wait_for(lambda: record_count(bootstrap, dlq), until=lambda n: n == 2)
        await asyncio.sleep(2)
        assert await record_count(bootstrap, dlq) == 2

    async def test_a_reason_passed_over_is_still_there_for_a_later_run(
        self, infrastructure: Infrastructure, topic_prefix: str
    ) -> None:
        bootstrap = infrastructure.kafka_bootstrap
        dlq = f"{topic_prefix}{topics.dlq_topic(topics.USAGE_RECORDED)}"
        for reason in (b"unknown_tenant", b"future_timestamp"):
            await produce_raw(bootstrap, dlq, [(b"k", reason)], headers=[("x-dlq-reason", reason)])
        common = ["--prefix", topic_prefix, "--bootstrap", bootstrap]

        only = await replay("--reason", "future_timestamp", *common)
        assert only["sent"] == {"future_timestamp": 1}
        rest = await replay(*common)
        assert rest["sent"] == {"unknown_tenant": 1}
        again = await replay("--from-beginning", *common)
        assert again["sent"] == {"future_timestamp": 1, "unknown_tenant": 1}
