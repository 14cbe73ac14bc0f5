"""usage-svc ingestion next to a bare aiokafka consumer, and freshness, measured in the same run.

1. 1,000,000 UsageRecorded events (1 % of them duplicates: the same record sent
   again), 1,000 tenants, 5 metrics, are produced to a fresh topic with the
   local partition count.
2. (a) baseline: a bare aiokafka consumer reads that topic and decodes each
   record's JSON (orjson);
   (b) usage-svc (its app, in this process) ingests the same topic: events
   folded into committed aggregates with exact dedup, i.e. counted at the
   offset commit that follows each database commit. Both rates run from the
   moment a tenth of the events is done to the last one, so that start-up
   (consumer group join, first fetch, partitions created) is left out; the
   whole-run figures are printed next to them. The totals per (tenant, metric)
   are checked against the events produced (exit status 1 if any differs).
   Where the time goes: the ingester's own split (decoding, database, offset
   commits) and the CPU time per event of this process and of the PostgreSQL
   backends serving it (when PostgreSQL runs on this machine).
3. (c) freshness: while a separate process produces a steady 10,000 events/s,
   probe events are sent one at a time and ``GET /tenants/{id}/usage`` is
   polled until each shows up; the p99 of produce → visible is reported.

Infrastructure: the running local stack, ``KAFKA_BOOTSTRAP_SERVERS`` and
``DATABASE_URL``, or whatever ``stellara_kit.testing.infra.discover`` starts
(and stops afterwards), as the test plugin does.

    make bench-usage                 # BENCH_EVENTS=1000000 by default
    BENCH_EVENTS=200000 make bench-usage
    BENCH_FRESHNESS_SECONDS=20 BENCH_FRESHNESS_RATE=10000 ...
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import platform
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stellara_contracts import new_event, topics
from stellara_contracts.events import Role, TenantSnapshot, TenantStatus
from stellara_kit.db import asyncpg_dsn
from stellara_kit.kafka_admin import delete_topics, ensure_topics
from stellara_kit.migrations import upgrade_async
from stellara_kit.testing import auth_headers, running_app, wait_for
from stellara_kit.testing.infra import create_test_database, discover, drop_test_database
from usage_svc.main import create_app
from usage_svc.migrate import MIGRATIONS
from usage_svc.settings import Settings

N = int(os.environ.get("BENCH_EVENTS", "1000000"))
TENANTS = 1000
METRICS = ("api_calls", "storage_bytes", "active_users", "transactions", "workflow_runs")
DUPLICATE_SHARE = 0.01
PLANS = ("free", "starter", "pro", "enterprise")
FRESHNESS_RATE = int(os.environ.get("BENCH_FRESHNESS_RATE", "10000"))
FRESHNESS_SECONDS = float(os.environ.get("BENCH_FRESHNESS_SECONDS", "20"))
USAGE_TYPE = "stellara.usage.recorded.v1"


# --------------------------------------------------------------------- records
def usage_json(
    tenant: str, metric: str, value: float, occurred_at: str, props: dict | None
) -> bytes:
    data: dict[str, Any] = {
        "tenant_id": tenant,
        "metric": metric,
        "value": value,
        "occurred_at": occurred_at,
    }
    if props:
        data["properties"] = props
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "bench",
            "type": USAGE_TYPE,
            "subject": tenant,
            "tenantid": tenant,
            "time": occurred_at,
            "datacontenttype": "application/json",
            "data": data,
        }
    )


Totals = dict[tuple[str, str], tuple[int, float]]


def make_records(
    n: int, tenants: list[str], rng: random.Random
) -> tuple[list[tuple[bytes, bytes]], int, Totals]:
    """``n`` records, ``DUPLICATE_SHARE`` of them repeats of earlier ones.

    Returns the records, how many are unique, and the (count, sum) each
    (tenant, metric) must end with.
    """
    now = datetime.now(UTC)
    stamps = [(now - timedelta(seconds=s)).isoformat() for s in range(0, 600)]
    duplicates = int(n * DUPLICATE_SHARE)
    unique = n - duplicates
    out: list[tuple[bytes, bytes]] = []
    expected: dict[tuple[str, str], list[float]] = {}
    for i in range(unique):
        tenant = tenants[rng.randrange(len(tenants))]
        metric = METRICS[i % len(METRICS)]
        if metric == "storage_bytes":
            value: float = rng.randrange(1, 10_000_000)
        elif metric == "active_users":
            value = rng.randrange(1, 50)
        else:
            value = 1
        props = {"route": "/tenants/{id}", "status": 200} if metric == "api_calls" else None
        totals = expected.setdefault((tenant, metric), [0, 0.0])
        totals[0] += 1
        totals[1] += value
        out.append((tenant.encode(), usage_json(tenant, metric, value, stamps[i % 600], props)))
    repeats: dict[int, list[int]] = {}
    for _ in range(duplicates):
        original = rng.randrange(unique)
        repeats.setdefault(rng.randrange(original, unique), []).append(original)
    mixed: list[tuple[bytes, bytes]] = []
    for position, item in enumerate(out):
        mixed.append(item)
        for original in repeats.get(position, ()):
            mixed.append(out[original])
    return mixed, unique, {key: (int(c), v) for key, (c, v) in expected.items()}


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=1024 * 1024,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def publish_tenants(bootstrap: str, topic: str, tenants: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        created = datetime(2025, 1, 1, tzinfo=UTC)
        for i, tenant in enumerate(tenants):
            event = new_event(
                TenantSnapshot(
                    tenant_id=uuid.UUID(tenant),
                    slug=f"bench-{i}",
                    name=f"Bench {i}",
                    plan=PLANS[i % len(PLANS)],
                    status=TenantStatus.ACTIVE,
                    version=1,
                    created_at=created,
                    updated_at=created,
                ),
                source="bench",
            )
            await producer.send(topic, event.to_json(), key=event.key)
        await producer.flush()
    finally:
        await producer.stop()


# --------------------------------------------------------------------- (a) baseline
async def bare_consumer(bootstrap: str, topic: str, expected: int) -> tuple[float, float]:
    """(events/s from the first tenth read to the end, events/s from the first fetch)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = 0
        started: float | None = None
        tenth: tuple[float, int] | None = None
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if started is None and batch:
                started = time.perf_counter()
            for records in batch.values():
                for record in records:
                    orjson.loads(record.value)
                seen += len(records)
            if tenth is None and seen >= expected // 10:
                tenth = time.perf_counter(), seen
        ended = time.perf_counter()
        assert started is not None and tenth is not None
        return (expected - tenth[1]) / (ended - tenth[0]), expected / (ended - started)
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        await consumer._client.force_metadata_update()
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        await asyncio.sleep(0.2)
    raise RuntimeError(f"no partitions for {topic}")


# --------------------------------------------------------------------- (c) load generator
def steady_load(
    bootstrap: str, topic: str, tenants: list[str], rate: int, seconds: float, out: Any
) -> None:
    """Runs in its own process: ``rate`` events/s for ``seconds``; reports the rate achieved."""

    async def run() -> tuple[int, float]:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=512 * 1024,
        )
        await producer.start()
        rng = random.Random(7)
        sent = 0
        started = time.perf_counter()
        try:
            while (elapsed := time.perf_counter() - started) < seconds:
                due = int(elapsed * rate) - sent
                stamp = datetime.now(UTC).isoformat()
                for _ in range(max(due, 0)):
                    tenant = tenants[rng.randrange(len(tenants))]
                    metric = METRICS[sent % len(METRICS)]
                    await producer.send(
                        topic, usage_json(tenant, metric, 1, stamp, None), key=tenant.encode()
                    )
                    sent += 1
                await asyncio.sleep(0.005)
            await producer.flush()
        finally:
            await producer.stop()
        return sent, time.perf_counter() - started

    sent, elapsed = asyncio.run(run())
    out.put((sent, elapsed))


async def freshness(
    http: httpx.AsyncClient,
    settings: Settings,
    bootstrap: str,
    topic: str,
    probe_tenant: str,
    load_tenants: list[str],
) -> tuple[list[float], float]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    load = context.Process(
        target=steady_load,
        args=(bootstrap, topic, load_tenants, FRESHNESS_RATE, FRESHNESS_SECONDS, results),
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=0)
    await producer.start()
    headers = auth_headers(settings, role=Role.PLATFORM_ADMIN)
    delays: list[float] = []
    load.start()
    try:
        await asyncio.sleep(2.0)  # let the load reach its rate
        deadline = time.perf_counter() + FRESHNESS_SECONDS - 3.0
        sent = 0
        while time.perf_counter() < deadline:
            sent += 1
            now = datetime.now(UTC).isoformat()
            value = usage_json(probe_tenant, "api_calls", 1, now, None)
            started = time.perf_counter()
            await producer.send_and_wait(topic, value, key=probe_tenant.encode())
            while True:
                response = await http.get(
                    f"/tenants/{probe_tenant}/usage",
                    params={"metric": "api_calls"},
                    headers=headers,
                )
                if response.json()["metrics"][0]["events"] >= sent:
                    break
                await asyncio.sleep(0.005)
            delays.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()
        # off the event loop: the service under test keeps running meanwhile
        await asyncio.to_thread(load.join, FRESHNESS_SECONDS + 30)
    produced, elapsed = await asyncio.to_thread(results.get, timeout=5)
    return delays, produced / elapsed


async def check_totals(owner_url: str, expected: Totals) -> tuple[int, int, int]:
    """(events folded, unique events produced, (tenant, metric) totals that differ)."""
    conn = await asyncpg.connect(asyncpg_dsn(owner_url))
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.system', 'on', true)")
            rows = await conn.fetch(
                "SELECT tenant_id::text, metric, sum(count) AS n, sum(sum) AS total"
                "  FROM hourly_aggregates GROUP BY 1, 2"
            )
    finally:
        await conn.close()
    found = {(r["tenant_id"], r["metric"]): (int(r["n"]), float(r["total"])) for r in rows}
    wrong = sum(1 for key in expected.keys() | found.keys() if found.get(key) != expected.get(key))
    return sum(n for n, _ in found.values()), sum(n for n, _ in expected.values()), wrong


async def backend_cpu(infra: Any, database: str) -> float | None:
    """CPU seconds used so far by the PostgreSQL backends serving ``database`` (None: not visible)."""
    conn = await asyncpg.connect(infra.pg_admin_url)
    try:
        pids = [
            row[0]
            for row in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1", database
            )
        ]
    finally:
        await conn.close()
    return _cpu_seconds(pids)


def _cpu_seconds(pids: list[int]) -> float | None:
    total = 0.0
    for pid in pids:
        try:  # only when PostgreSQL runs on this machine, outside a container
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def longest_stall(progress: list[tuple[float, int]]) -> float:
    """The longest time the committed count stood still (before the end)."""
    longest, since, last = 0.0, progress[0][0], progress[0][1]
    for at, count in progress:
        if count != last:
            since, last = at, count
        longest = max(longest, at - since)
    return longest


def p99(values: list[float]) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[98]
        if len(values) > 1
        else values[0]
    )


# --------------------------------------------------------------------- the run
async def run(infra: Any) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    partitions = int(os.environ.get("STELLARA_PARTITIONS", "4"))
    names = [f"{prefix}{t}" for t in topics.ALL_TOPICS]
    names += [f"{prefix}{topics.dlq_topic(t)}" for t in topics.ALL_TOPICS]
    await ensure_topics(
        infra.kafka_bootstrap,
        names,
        partitions=partitions,
        compacted={f"{prefix}{t}" for t in topics.COMPACTED_TOPICS},
    )
    database = await create_test_database(infra)
    figures: dict[str, Any] = {"partitions": partitions}
    try:
        await upgrade_async(MIGRATIONS, database.owner_url)
        rng = random.Random(42)
        tenants = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(TENANTS)]
        probe_tenant = str(uuid.uuid4())
        usage_topic = f"{prefix}{topics.USAGE_RECORDED}"
        await publish_tenants(
            infra.kafka_bootstrap, f"{prefix}{topics.TENANT_STATE}", [*tenants, probe_tenant]
        )

        print(f"generating {N:,} events …", flush=True)
        records, _, expected = make_records(N, tenants, rng)
        produce_seconds = await produce(infra.kafka_bootstrap, usage_topic, records)
        figures["produce_rate"] = N / produce_seconds
        del records

        print("(a) bare aiokafka consumer …", flush=True)
        figures["baseline"], figures["baseline_overall"] = await bare_consumer(
            infra.kafka_bootstrap, usage_topic, N
        )

        print("(b) usage-svc ingestion …", flush=True)
        settings = Settings(
            environment="test",
            database_url=database.runtime_url,
            migration_database_url=database.owner_url,
            kafka_bootstrap_servers=infra.kafka_bootstrap,
            topic_prefix=prefix,
            consumer_group=f"{prefix}usage-svc",
            log_json=False,
            log_level="WARNING",
        )
        app = create_app(settings)
        logging.getLogger(f"faststream.{settings.service_name}").setLevel(logging.WARNING)
        async with running_app(app) as http:
            ingester = app.state.ingester

            progress: list[tuple[float, int]] = []  # (time.perf_counter(), records committed)

            async def committed() -> int:
                progress.append((time.perf_counter(), ingester.stats.records_committed))
                return progress[-1][1]

            async def started() -> float | None:
                return ingester.stats.first_fetch_at

            await wait_for(started, until=lambda at: at is not None, timeout=120, interval=0.001)
            cpu_before = time.process_time(), await backend_cpu(infra, database.name)
            await wait_for(committed, until=lambda done: done >= N, timeout=900, interval=0.05)
            cpu_after = time.process_time(), await backend_cpu(infra, database.name)
            stats = ingester.stats
            assert stats.first_fetch_at is not None and stats.last_commit_at is not None
            wall = stats.last_commit_at - stats.first_fetch_at
            figures["ingest_overall"] = N / wall
            # sustained: from the first tenth committed to the end (start-up left out)
            tenth_at, tenth = next((at, n) for at, n in progress if n >= N // 10)
            figures["ingest"] = (N - tenth) / (stats.last_commit_at - tenth_at)
            figures["stall"] = longest_stall(progress)
            figures["batches"] = stats.batches_committed
            figures["accepted"] = stats.events_accepted
            figures["breakdown"] = (
                wall,
                stats.prepare_seconds,
                stats.store_seconds,
                stats.commit_seconds,
            )
            figures["cpu"] = (
                (cpu_after[0] - cpu_before[0]) / N,
                (cpu_after[1] - cpu_before[1]) / N
                if cpu_after[1] is not None and cpu_before[1] is not None
                else None,
            )
            figures["exact"] = await check_totals(database.owner_url, expected)

            print(
                f"(c) freshness at {FRESHNESS_RATE:,} events/s for {FRESHNESS_SECONDS:.0f} s …",
                flush=True,
            )
            delays, load_rate = await freshness(
                http, settings, infra.kafka_bootstrap, usage_topic, probe_tenant, tenants
            )
            figures["freshness"] = delays
            figures["load_rate"] = load_rate
    finally:
        await drop_test_database(infra, database)
        await delete_topics(infra.kafka_bootstrap, names)
    return figures


def main() -> None:
    infra, stop = discover()
    try:
        figures = asyncio.run(run(infra))
    finally:
        if stop:
            stop()
    base, ingest = figures["baseline"], figures["ingest"]
    folded, unique, wrong = figures["exact"]
    exact = folded == unique and wrong == 0
    delays = figures["freshness"]
    wall, prepare, store, commit = figures["breakdown"]
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Kafka and PostgreSQL on the same box ({infra.source})"
    )
    print(
        f"events: {N:,} ({N - unique:,} duplicates), tenants: {TENANTS}, metrics: {len(METRICS)}, "
        f"partitions: {figures['partitions']} (produced at {figures['produce_rate']:,.0f} events/s)"
    )
    print("events/s from a tenth of the events done to the last one (start-up left out):")
    print(
        f"(a) bare aiokafka consumer + JSON decode:  {base:>10,.0f} events/s "
        f"({figures['baseline_overall']:,.0f} from the first fetch)"
    )
    print(
        f"(b) usage-svc ingest to committed aggregates: {ingest:>7,.0f} events/s "
        f"({figures['batches']} transactions; folded {folded:,} of {unique:,} unique, "
        f"{wrong} (tenant, metric) totals off: {'exact' if exact else 'NOT EXACT'})"
    )
    python_cpu, postgres_cpu = figures["cpu"]
    print(
        f"    {figures['ingest_overall']:,.0f} events/s from the first fetch ({wall:.2f} s to the "
        f"last commit), longest stall {figures['stall']:.2f} s"
    )
    print(
        f"    reader decoding and classifying {prepare:.2f} s, writer in the database "
        f"{store:.2f} s, dead letters and offset commits {commit:.2f} s (reader and writer "
        "overlap)"
    )
    print(
        f"    CPU per event: service process {python_cpu * 1e6:.1f} µs"
        + (f", PostgreSQL backends {postgres_cpu * 1e6:.1f} µs" if postgres_cpu is not None else "")
    )
    print(f"ratio (b)/(a):                             {ingest / base:>10.2f}")
    print(
        f"(c) freshness at {figures['load_rate']:,.0f} events/s: p99 {p99(delays) * 1000:,.0f} ms, "
        f"p50 {statistics.median(delays) * 1000:,.0f} ms, max {max(delays) * 1000:,.0f} ms "
        f"({len(delays)} probes)"
    )
    checks = (
        ("(b) >= 50,000 events/s", ingest >= 50_000, f"{ingest / 50_000:.2f}x"),
        ("(b)/(a) >= 0.5", ingest / base >= 0.5, f"{ingest / base / 0.5:.2f}x"),
        ("(c) p99 < 1 s", p99(delays) < 1.0, f"{p99(delays):.2f} s"),
    )
    for target, met, figure in checks:
        print(f"target {target}: {'met' if met else 'NOT MET'} ({figure})")
    if not exact:
        raise SystemExit("the aggregates do not match the events produced")


if __name__ == "__main__":
    main()
