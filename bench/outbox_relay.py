"""Outbox relay throughput next to a bare aiokafka producer, measured in the same run.

Both send the same records (same keys, same payloads) to fresh topics on the
local Kafka. The relay's figure counts from the first to the last committed
outbox row published and deleted; the baseline is an idempotent aiokafka
producer sending the records with the same batching settings.

    make bench-outbox            # N=50000 by default; BENCH_EVENTS=... to change
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from sqlalchemy import MetaData, func, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from stellara_contracts import new_event, topics
from stellara_contracts.events import UsageRecorded
from stellara_kit.db import Database
from stellara_kit.kafka_admin import delete_topics, ensure_topics
from stellara_kit.outbox import OutboxRelay, outbox_table, outbox_trigger_statements
from stellara_kit.testing.infra import create_test_database, discover, drop_test_database

N = int(os.environ.get("BENCH_EVENTS", "50000"))
TENANTS = 100


def records() -> list[tuple[bytes, bytes]]:
    tenants = [uuid.uuid4() for _ in range(TENANTS)]
    now = datetime.now(UTC)
    out = []
    for i in range(N):
        event = new_event(
            UsageRecorded(
                tenant_id=tenants[i % TENANTS], metric="api_calls", value=1, occurred_at=now
            ),
            source="bench",
        )
        out.append((event.key, event.to_json()))
    return out


async def bare_producer(bootstrap: str, topic: str, rows: list[tuple[bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=2, max_batch_size=512 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    futures = [await producer.send(topic, value, key=key) for key, value in rows]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await producer.stop()
    return elapsed


async def relay(infra, topic: str, rows: list[tuple[bytes, bytes]]) -> float:
    database = await create_test_database(infra)
    metadata = MetaData()
    table = outbox_table(metadata)
    owner = create_async_engine(database.owner_url)
    async with owner.begin() as conn:
        await conn.run_sync(metadata.create_all)
        for statement in outbox_trigger_statements():
            await conn.exec_driver_sql(statement)
    await owner.dispose()
    db = Database(database.runtime_url, pool_size=4)
    try:
        for start in range(0, len(rows), 5000):
            async with db.system_transaction() as session:
                await session.execute(
                    insert(table),
                    [
                        {
                            "event_id": uuid.uuid4(),
                            "topic": topic,
                            "key": k,
                            "payload": v,
                            "headers": {},
                        }
                        for k, v in rows[start : start + 5000]
                    ],
                )
        relay = OutboxRelay(
            database.runtime_url, infra.kafka_bootstrap, name=database.name, batch_size=2000
        )
        started = time.perf_counter()
        await relay.start()
        while True:
            async with db.system_transaction() as session:
                left = (await session.execute(select(func.count()).select_from(table))).scalar_one()
            if left == 0:
                break
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        await relay.stop()
        return elapsed
    finally:
        await db.dispose()
        await drop_test_database(infra, database)


async def run(infra) -> tuple[float, float, int]:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    base_topic, relay_topic = f"{prefix}baseline", f"{prefix}{topics.USAGE_RECORDED}"
    partitions = int(os.environ.get("STELLARA_PARTITIONS", "4"))
    await ensure_topics(infra.kafka_bootstrap, [base_topic, relay_topic], partitions=partitions)
    try:
        rows = records()
        baseline = await bare_producer(infra.kafka_bootstrap, base_topic, rows)
        relayed = await relay(infra, relay_topic, rows)
    finally:
        await delete_topics(infra.kafka_bootstrap, [base_topic, relay_topic])
    return baseline, relayed, partitions


def main() -> None:
    infra, stop = discover()
    try:
        baseline, relayed, partitions = asyncio.run(run(infra))
    finally:
        if stop:
            stop()
    base_rate, relay_rate = N / baseline, N / relayed
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Kafka and PostgreSQL on the same box ({infra.source})"
    )
    print(f"events: {N}, tenants: {TENANTS}, partitions: {partitions}")
    print(f"bare aiokafka producer (baseline): {base_rate:>10,.0f} events/s")
    print(f"outbox relay (committed rows):     {relay_rate:>10,.0f} events/s")
    print(f"ratio relay/baseline:              {relay_rate / base_rate:>10.2f}")


if __name__ == "__main__":
    main()
