"""usage-svc queries over 10 million raw events, next to a trivial indexed query, same run.

1. A fresh usage-svc database (the service's migrations) is loaded with
   ``BENCH_QUERY_EVENTS`` usage events (default 10,000,000) for 1,000 tenants
   on the four plans, 5 metrics, spread evenly over the last 90 days. The
   events go through the service's own fold path, not through Kafka: batches
   of ``BENCH_QUERY_BATCH`` rows are COPYed into its staging table and folded
   by ``ingest.repository.fold_batch`` (dedup ledger probe, ledger rows, raw
   events, hourly and period aggregates), one transaction each, exactly as the
   ingester's writer does; what is left out is Kafka, decoding and the quota
   alerts. Then ``VACUUM ANALYZE`` (what autovacuum does soon after such a load).
2. usage-svc runs as it is deployed (uvicorn, one process, its own Kafka
   topics for the tenant directory; raw events kept past the load's 90 days);
   the baseline is a bare FastAPI app in the same kind of process answering
   ``GET /tenants/{id}/probe`` with one indexed look-up (the primary key of
   ``meters``) over an asyncpg pool.
3. For each endpoint, random tenants, a platform admin's internal token:
   p50/p99 at 1 and at ``BENCH_QUERY_CLIENTS`` (50) concurrent clients
   (closed loop: a client sends its next request when the answer came), for
   ``BENCH_QUERY_SECONDS`` seconds each after a short warm-up. At 50 clients on
   a 2-core machine the latency is mostly queueing (clients / throughput), so
   the throughput is printed too.
4. The SQL of the endpoint with the highest p99 at one client is run in this
   process through the service's own functions and its slowest statement is
   printed with ``EXPLAIN (ANALYZE, BUFFERS)``.

Infrastructure: ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL``, or whatever
``stellara_kit.testing.infra.discover`` starts (and stops afterwards).

    make bench-queries                       # BENCH_QUERY_EVENTS=10000000 by default
    BENCH_QUERY_EVENTS=200000 make bench-queries
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import random
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from stellara_contracts import new_event, topics
from stellara_contracts.events import TenantSnapshot, TenantStatus
from stellara_kit.db import Database, asyncpg_connection, asyncpg_dsn
from stellara_kit.kafka_admin import delete_topics, ensure_topics
from stellara_kit.migrations import upgrade_async
from stellara_kit.testing import auth_headers
from stellara_kit.testing.infra import create_test_database, discover, drop_test_database
from usage_svc import service
from usage_svc.ingest import repository as ingest_repo
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.migrate import MIGRATIONS
from usage_svc.plans import BUILTIN_PLANS
from usage_svc.settings import Settings

N = int(os.environ.get("BENCH_QUERY_EVENTS", "10000000"))
BATCH = int(os.environ.get("BENCH_QUERY_BATCH", "50000"))
SECONDS = float(os.environ.get("BENCH_QUERY_SECONDS", "5"))
WARMUP_SECONDS = 1.0
CLIENTS = int(os.environ.get("BENCH_QUERY_CLIENTS", "50"))
TENANTS = 1000
DAYS = 90
PLANS = ("free", "starter", "pro", "enterprise")
METRICS = ("api_calls", "storage_bytes", "active_users", "transactions", "workflow_runs")
TZ = "America/New_York"
HERE = Path(__file__).resolve()
LOGS = Path(os.environ.get("STELLARA_HOME", HERE.parent.parent / ".stellara")) / "logs"


# --------------------------------------------------------------------------- loading
def uuid_text(n: int) -> str:
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:]}"


def make_batch(
    rng: random.Random, tenants: list[str], first_id: int, size: int, start: float
) -> list[ingest_repo.StagedRow]:
    """``size`` staged rows, uniformly over tenants, metrics and the 90 days from ``start``."""
    span = DAYS * 86400.0
    rows: list[ingest_repo.StagedRow] = []
    append = rows.append
    choice, rand = rng.choice, rng.random
    for i in range(first_id, first_id + size):
        metric = choice(METRICS)
        if metric == "storage_bytes":
            value = float(int(rand() * 1e9))
        elif metric == "active_users":
            value = float(int(rand() * 50))
        else:
            value = 1.0 if metric != "transactions" else float(int(rand() * 20) + 1)
        occurred = datetime.fromtimestamp(start + rand() * span, UTC)
        append((choice(tenants), uuid_text(i), metric, value, occurred, "bench", None, True, None))
    return rows


async def load(runtime_url: str, tenants: list[str], now: datetime) -> float:
    """Fold N events through ``fold_batch``; generation of the next batch overlaps the fold."""
    db = Database(runtime_url, pool_size=2)
    rng = random.Random(7)
    start = now.timestamp() - DAYS * 86400.0
    today = now.date()
    days = [today - timedelta(days=d) for d in range(DAYS + 1)]
    began = time.perf_counter()
    try:
        async with db.system_transaction() as session:
            conn = await asyncpg_connection(session)
            await ingest_repo.ensure_raw_partitions(conn, days)
            epoch = await ingest_repo.dedup_epoch(conn, today, 7)
            await ingest_repo.mark_meters_with_data(conn, METRICS)
        done = 0
        pending = asyncio.create_task(
            asyncio.to_thread(make_batch, rng, tenants, 0, min(BATCH, N), start)
        )
        while done < N:
            rows = await pending
            if done + len(rows) < N:
                size = min(BATCH, N - done - len(rows))
                pending = asyncio.create_task(
                    asyncio.to_thread(make_batch, rng, tenants, done + len(rows), size, start)
                )
            async with db.system_transaction() as session:
                conn = await asyncpg_connection(session)
                result = await ingest_repo.fold_batch(conn, rows, epoch=epoch, probe_from=epoch)
            assert result.accepted == len(rows), (result.accepted, len(rows))
            done += len(rows)
            if done % (BATCH * 20) == 0 or done == N:
                rate = done / (time.perf_counter() - began)
                print(f"  {done:,} events folded ({rate:,.0f}/s)", flush=True)
    finally:
        await db.dispose()
    return time.perf_counter() - began


async def publish_tenants(bootstrap: str, topic: str, tenants: list[str]) -> None:
    from aiokafka import AIOKafkaProducer

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


# --------------------------------------------------------------------------- the baseline
def bare_app():  # type: ignore[no-untyped-def]
    """A bare FastAPI endpoint doing one indexed look-up over an asyncpg pool."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    dsn = os.environ["BENCH_BARE_DSN"]
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        state["pool"] = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
        yield
        await state["pool"].close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/tenants/{tenant_id}/probe")
    async def probe(tenant_id: uuid.UUID) -> dict[str, object]:
        async with state["pool"].acquire() as conn:
            unit = await conn.fetchval("SELECT unit FROM meters WHERE key = $1", "api_calls")
        return {"tenant_id": str(tenant_id), "unit": unit}

    return app


# --------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process(name: str, command: list[str], env: dict[str, str]) -> Iterator[None]:
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"bench-{name}.log", "wb") as log:
        proc = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_http(url: str, headers: dict[str, str], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, headers=headers, timeout=5).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


# --------------------------------------------------------------------------- the load
async def _client(
    port: int,
    paths: Callable[[], str],
    headers: bytes,
    stop_at: float,
    latencies: list[float],
) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    try:
        while time.monotonic() < stop_at:
            request = f"GET {paths()} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n".encode() + headers
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
            await reader.readexactly(int(match.group(1)) if match else 0)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
                if errors == 1:
                    status = head.split(b"\r\n", 1)[0].decode()
                    print(f"    first error: {status}", flush=True)
    finally:
        writer.close()
    return errors


async def measure(
    port: int, paths: Callable[[], str], auth: dict[str, str], clients: int
) -> dict[str, float]:
    headers = "".join(f"{k}: {v}\r\n" for k, v in auth.items()).encode() + b"\r\n"
    warm: list[float] = []
    await asyncio.gather(
        *(
            _client(port, paths, headers, time.monotonic() + WARMUP_SECONDS, warm)
            for _ in range(clients)
        )
    )
    latencies: list[float] = []
    started = time.monotonic()
    errors = await asyncio.gather(
        *(_client(port, paths, headers, started + SECONDS, latencies) for _ in range(clients))
    )
    took = time.monotonic() - started
    latencies.sort()
    return {
        "n": len(latencies),
        "rate": len(latencies) / took,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "errors": sum(errors),
    }


# --------------------------------------------------------------------------- the plans
async def explain_slowest(
    runtime_url: str, name: str, tenant: uuid.UUID, now: datetime
) -> tuple[str, str]:
    """Run endpoint ``name``'s service call for ``tenant``; EXPLAIN ANALYZE its slowest statement."""
    from sqlalchemy import event

    db = Database(runtime_url, pool_size=1)
    catalogue = MeterCatalogue(None)
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "set_config" not in statement:
            statements.append((statement, params))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    plan = BUILTIN_PLANS["pro"]
    call = ENDPOINT_CALLS[name]
    try:
        async with db.transaction(tenant) as session:
            await call(session, tenant, now, catalogue, plan)
            event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
            conn = await asyncpg_connection(session)
            slowest: tuple[float, str, str] = (-1.0, "", "")
            for statement, params in statements:
                args = list(params) if isinstance(params, (list, tuple)) else []
                lines = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *args)
                plan_text = "\n".join(r[0] for r in lines)
                match = re.search(r"Execution Time: ([\d.]+) ms", plan_text)
                took = float(match.group(1)) if match else 0.0
                if took > slowest[0]:
                    slowest = (took, statement, plan_text)
    finally:
        await db.dispose()
    return slowest[1], slowest[2]


def _span(days: int, tz: str, now: datetime) -> service.TimeRange:
    zone = service.zone(tz)
    today = now.astimezone(zone).date()
    return service.resolve_range(
        (today - timedelta(days=days - 1)).isoformat(),
        today.isoformat(),
        tz=zone,
        default_start=now,
        now=now,
        max_days=1100,
    )


def _daily(days: int, tz: str) -> Callable[..., Awaitable[Any]]:
    async def call(
        session: Any, tenant: uuid.UUID, now: datetime, catalogue: Any, plan: Any
    ) -> Any:
        return await service.series(
            session,
            tenant,
            _span(days, tz, now),
            window="day",
            tz=service.zone(tz),
            catalogue=catalogue,
            metrics=None,
        )

    return call


async def _usage(session: Any, tenant: uuid.UUID, now: datetime, catalogue: Any, plan: Any) -> Any:
    from usage_svc.plans import period_of

    zone = service.zone("UTC")
    span = service.resolve_range(
        None, None, tz=zone, default_start=period_of(plan, now).start_at, now=now, max_days=1100
    )
    return await service.summary(session, tenant, span, tz=zone, catalogue=catalogue, metrics=None)


def _trends(period: str) -> Callable[..., Awaitable[Any]]:
    async def call(
        session: Any, tenant: uuid.UUID, now: datetime, catalogue: Any, plan: Any
    ) -> Any:
        return await service.trends(
            session,
            tenant,
            period=period,  # type: ignore[arg-type]
            now=now,
            catalogue=catalogue,
            metrics=None,
            plan=plan,
        )

    return call


async def _invoice(
    session: Any, tenant: uuid.UUID, now: datetime, catalogue: Any, plan: Any
) -> Any:
    return await service.invoice_preview(session, tenant, plan=plan, now=now, catalogue=catalogue)


ENDPOINT_CALLS: dict[str, Callable[..., Awaitable[Any]]] = {
    "GET /usage": _usage,
    "GET /usage/daily 30 d": _daily(30, "UTC"),
    f"GET /usage/daily 30 d tz={TZ}": _daily(30, TZ),
    "GET /usage/daily 90 d": _daily(90, "UTC"),
    f"GET /usage/daily 90 d tz={TZ}": _daily(90, TZ),
    "GET /usage/trends 7d": _trends("7d"),
    "GET /usage/trends 30d": _trends("30d"),
    "GET /usage/invoice-preview": _invoice,
}


def endpoint_paths(tenants: list[str], now: datetime) -> dict[str, Callable[[], str]]:
    today = now.date()
    local_today = now.astimezone(service.zone(TZ)).date()

    def daily(days: int, tz: str | None) -> Callable[[], str]:
        end = local_today if tz else today
        query = f"start={end - timedelta(days=days - 1)}&to={end}"
        if tz:
            query += f"&tz={tz.replace('/', '%2F')}"
        return lambda: f"/tenants/{random.choice(tenants)}/usage/daily?{query}"

    return {
        "bare FastAPI, one indexed look-up": lambda: f"/tenants/{random.choice(tenants)}/probe",
        "GET /usage": lambda: f"/tenants/{random.choice(tenants)}/usage",
        "GET /usage/daily 30 d": daily(30, None),
        f"GET /usage/daily 30 d tz={TZ}": daily(30, TZ),
        "GET /usage/daily 90 d": daily(90, None),
        f"GET /usage/daily 90 d tz={TZ}": daily(90, TZ),
        "GET /usage/trends 7d": lambda: f"/tenants/{random.choice(tenants)}/usage/trends",
        "GET /usage/trends 30d": (
            lambda: f"/tenants/{random.choice(tenants)}/usage/trends?period=30d"
        ),
        "GET /usage/invoice-preview": (
            lambda: f"/tenants/{random.choice(tenants)}/usage/invoice-preview"
        ),
    }


# --------------------------------------------------------------------------- the run
async def table_figures(owner_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(asyncpg_dsn(owner_url))
    try:
        await conn.execute("SELECT set_config('app.system', 'on', false)")
        out = {}
        for table in ("raw_events", "hourly_aggregates", "period_aggregates"):
            out[table] = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        out["database_bytes"] = int(
            await conn.fetchval("SELECT pg_database_size(current_database())")
        )
        return out
    finally:
        await conn.close()


async def vacuum(owner_url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(owner_url))
    try:
        for table in ("hourly_aggregates", "period_aggregates", "meters"):
            await conn.execute(f"VACUUM ANALYZE {table}")
    finally:
        await conn.close()


def main() -> None:
    infra, stop = discover()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    names = [f"{prefix}{t}" for t in topics.ALL_TOPICS]
    names += [f"{prefix}{topics.dlq_topic(t)}" for t in topics.ALL_TOPICS]
    rng = random.Random(42)
    tenants = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(TENANTS)]
    now = datetime.now(UTC)
    database = asyncio.run(create_test_database(infra))
    results: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    try:
        asyncio.run(
            ensure_topics(
                infra.kafka_bootstrap,
                names,
                partitions=1,
                compacted={f"{prefix}{t}" for t in topics.COMPACTED_TOPICS},
            )
        )
        asyncio.run(upgrade_async(MIGRATIONS, database.owner_url))
        asyncio.run(
            publish_tenants(infra.kafka_bootstrap, f"{prefix}{topics.TENANT_STATE}", tenants)
        )
        load_began = os.getloadavg()[0]
        print(f"loading {N:,} events for {TENANTS:,} tenants over {DAYS} days …", flush=True)
        load_seconds = asyncio.run(load(database.runtime_url, tenants, now))
        vacuum_began = time.perf_counter()
        asyncio.run(vacuum(database.owner_url))
        vacuum_seconds = time.perf_counter() - vacuum_began
        sizes = asyncio.run(table_figures(database.owner_url))

        settings = Settings(environment="test")
        auth = auth_headers(settings)
        service_port, bare_port = free_port(), free_port()
        service_env = {
            "USAGE_SVC_ENVIRONMENT": "test",
            "USAGE_SVC_DATABASE_URL": database.runtime_url,
            "USAGE_SVC_MIGRATION_DATABASE_URL": database.owner_url,
            "USAGE_SVC_KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
            "USAGE_SVC_TOPIC_PREFIX": prefix,
            "USAGE_SVC_CONSUMER_GROUP": f"{prefix}usage-svc",
            "USAGE_SVC_LOG_LEVEL": "WARNING",
            "USAGE_SVC_LOG_JSON": "false",
            # keep the 90 days of raw events the load wrote (the default drops them after 35)
            "USAGE_SVC_DEDUP_WINDOW_DAYS": "120",
            "PYTHONWARNINGS": "ignore",
        }
        uvicorn = [sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning"]
        uvicorn += ["--host", "127.0.0.1", "--factory"]
        with (
            process("queries-usage-svc", [*uvicorn, "--port", str(service_port), "usage_svc.main:create_app"], service_env),
            process("queries-bare", [*uvicorn, "--port", str(bare_port), "--app-dir", str(HERE.parent), "usage_queries:bare_app"], {"BENCH_BARE_DSN": asyncpg_dsn(database.runtime_url)}),
        ):  # fmt: skip
            wait_http(f"http://127.0.0.1:{bare_port}/tenants/{tenants[0]}/probe", {})
            # the tenant directory is read from Kafka: wait until the last tenant is known
            wait_http(f"http://127.0.0.1:{service_port}/tenants/{tenants[-1]}/usage", auth)
            print(f"measuring ({SECONDS:.0f} s per endpoint and concurrency) …", flush=True)
            for name, paths in endpoint_paths(tenants, now).items():
                port = bare_port if name.startswith("bare") else service_port
                auth = auth_headers(settings)  # a fresh internal token: they live minutes
                one = asyncio.run(measure(port, paths, auth, 1))
                many = asyncio.run(measure(port, paths, auth, CLIENTS))
                results[name] = (one, many)
                print(
                    f"  {name:<44} 1: p50 {one['p50']:6.1f} p99 {one['p99']:6.1f} ms"
                    f"   {CLIENTS}: p50 {many['p50']:6.1f} p99 {many['p99']:6.1f} ms"
                    f" {many['rate']:6,.0f}/s",
                    flush=True,
                )
        slowest = max(
            (n for n in results if n in ENDPOINT_CALLS), key=lambda n: results[n][0]["p99"]
        )
        statement, plan = asyncio.run(
            explain_slowest(database.runtime_url, slowest, uuid.UUID(tenants[0]), now)
        )
        load_ended = os.getloadavg()[0]
    finally:
        asyncio.run(drop_test_database(infra, database))
        asyncio.run(delete_topics(infra.kafka_bootstrap, names))
        if stop:
            stop()

    print()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; PostgreSQL and Kafka on the same box "
        f"({infra.source}); load average {load_began:.1f} before the load, "
        f"{load_ended:.1f} after the measurements"
    )
    print(
        f"loaded {N:,} events through fold_batch in {load_seconds:.0f} s "
        f"({N / load_seconds:,.0f} events/s, batches of {BATCH:,}); VACUUM ANALYZE "
        f"{vacuum_seconds:.0f} s; raw_events {sizes['raw_events']:,} rows, hourly_aggregates "
        f"{sizes['hourly_aggregates']:,}, period_aggregates {sizes['period_aggregates']:,}; "
        f"database {sizes['database_bytes'] / 2**30:.2f} GiB"
    )
    print(
        f"closed loop, random tenants, {SECONDS:.0f} s per row and concurrency "
        f"({WARMUP_SECONDS:.0f} s warm-up); target p99 < 50 ms"
    )
    print(
        f"{'endpoint':<44} {'1 client p50':>12} {'p99':>8} {'req/s':>7}"
        f" {f'{CLIENTS} clients p50':>15} {'p99':>8} {'req/s':>7} {'errors':>7}"
    )
    for name, (one, many) in results.items():
        print(
            f"{name:<44} {one['p50']:>10.1f}ms {one['p99']:>6.1f}ms {one['rate']:>7,.0f}"
            f" {many['p50']:>13.1f}ms {many['p99']:>6.1f}ms {many['rate']:>7,.0f}"
            f" {one['errors'] + many['errors']:>7}"
        )
    print()
    print(f"slowest at one client: {slowest}; its slowest statement, for tenant {tenants[0]}:")
    print(statement.strip())
    print(plan)


if __name__ == "__main__":
    main()
