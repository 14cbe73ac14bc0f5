"""Reading and writing real Kafka topics in tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

T = TypeVar("T")


async def consume(
    bootstrap: str,
    topic: str,
    *,
    count: int | None = None,
    timeout: float = 20.0,
    settle: float = 0.5,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topic`` from the beginning: until ``count`` records, or until it has been quiet
    for ``settle`` seconds after ``timeout`` is spent waiting for the first ones."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=int(settle * 1000))
            got = [r for rs in batch.values() for r in rs]
            records.extend(got)
            if count is not None and len(records) >= count:
                break
            if count is None and not got and records:
                break
    finally:
        await consumer.stop()
    records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
    return records


async def produce_raw(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes]],
    *,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


async def wait_for(
    probe: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], Any] = bool,
    timeout: float = 20.0,
    interval: float = 0.1,
) -> T:
    """Call ``probe`` until ``until(result)`` holds; return the result or fail with the last one."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s; last result: {result!r}")
        await asyncio.sleep(interval)
