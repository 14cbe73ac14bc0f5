"""The entitlement check under 200 concurrent clients, next to a bare FastAPI JSON endpoint.

Measured in the same run, on the same machine, each server in its own process (the
harness of ``gateway_reads.py``: load from ``wrk`` or the asyncio raw-socket client,
server under test pinned to CPU 0, load on CPU 1):

- the baseline: a bare FastAPI app (uvicorn, one process) answering
  ``GET /tenants/{id}/entitlements`` with the same JSON body the gateway gives;
- the gateway (uvicorn, one process, real Kafka) answering
  ``GET /tenants/{id}/entitlements`` and ``?feature=workflow_runs`` with a user token:
  JWT check, tenant resolution and guard, then the answer from memory (the period
  totals read from ``usage.period_totals``, the features from ``tenant.events``, the
  plan catalogue read once from a stand-in of usage-svc's ``GET /plans``).

Two phases per target: saturation (closed loop) and latency at ``BENCH_RATE``
requests/s (open loop, latency from the scheduled send time).

    make bench-entitlements     # BENCH_SECONDS=10 BENCH_CLIENTS=200 BENCH_RATE=500 to change
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

import gateway_reads as harness  # noqa: E402

TENANT = harness.TENANT
METRICS = ("active_users", "api_calls", "storage_bytes", "transactions", "workflow_runs")
PLANS = [
    {
        "key": "pro",
        "name": "Pro",
        "base_fee": "199.00",
        "metrics": {
            m: {"included": 1000, "unit_price": "0.01", "limit": 100_000, "limit_kind": "hard"}
            for m in METRICS
        },
    }
]


def _period() -> tuple[date, date]:
    today = datetime.now(UTC).date()
    start = date(today.year, today.month, 1)
    end = date(today.year + 1, 1, 1) if today.month == 12 else date(today.year, today.month + 1, 1)
    return start, end


def answer() -> dict[str, object]:
    """What the gateway answers for the bench tenant (the baseline answers it too)."""
    start, end = _period()
    return {
        "tenant_id": str(TENANT),
        "plan": "pro",
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "metered": [
            {
                "feature": m,
                "limit": 100_000.0,
                "limit_kind": "hard",
                "used": 420.0,
                "remaining": 99_580.0,
                "allowed": True,
            }
            for m in METRICS
        ],
        "features": ["beta_dashboard"],
    }


def bare_app():  # type: ignore[no-untyped-def]
    from fastapi import FastAPI

    app = FastAPI()
    body = answer()

    @app.get("/tenants/{tenant_id}/entitlements")
    async def entitlements(tenant_id: str) -> dict[str, object]:
        return body

    return app


async def serve_plans(port: int) -> None:
    """usage-svc's ``GET /plans``, canned (every request gets the catalogue)."""
    body = json.dumps(PLANS).encode()
    response = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(response)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def prepare(bootstrap: str, prefix: str) -> list[str]:
    from stellara_contracts import new_event, topics
    from stellara_contracts.events import (
        ConfigChange,
        PeriodTotalChanged,
        TenantConfigChanged,
        TenantSnapshot,
        TenantStatus,
    )
    from stellara_kit.kafka_admin import ensure_topics
    from stellara_kit.testing import produce_raw

    names = [f"{prefix}{t}" for t in topics.ALL_TOPICS]
    await ensure_topics(
        bootstrap, names, partitions=2, compacted={f"{prefix}{t}" for t in topics.COMPACTED_TOPICS}
    )
    now = datetime.now(UTC)
    snapshot = TenantSnapshot(
        tenant_id=TENANT, slug="bench", name="Bench Corp", plan="pro",
        status=TenantStatus.ACTIVE, version=1, created_at=now, updated_at=now,
    )  # fmt: skip
    start, end = _period()
    totals = [
        PeriodTotalChanged(
            tenant_id=TENANT,
            metric=m,
            plan="pro",
            period_start=start,
            period_end=end,
            value=420,
            limit=100_000,
            limit_kind="hard",
        )
        for m in METRICS
    ]
    flag = TenantConfigChanged(
        tenant_id=TENANT,
        changes=[
            ConfigChange(
                category="features", key="beta_dashboard", action="set", new_value=True, version=1
            )
        ],
    )
    for topic, payloads in (
        (topics.TENANT_STATE, [snapshot]),
        (topics.USAGE_PERIOD_TOTALS, totals),
        (topics.TENANT_EVENTS, [flag]),
    ):
        events = [new_event(p, source="bench") for p in payloads]
        await produce_raw(bootstrap, f"{prefix}{topic}", [(e.key, e.to_json()) for e in events])
    return names


def main() -> None:
    from gateway.auth import mint_user_token
    from gateway.settings import Settings
    from stellara_contracts.events import Role
    from stellara_kit.auth import Principal
    from stellara_kit.kafka_admin import delete_topics
    from stellara_kit.testing.infra import discover

    infra, stop = discover()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    names = asyncio.run(prepare(infra.kafka_bootstrap, prefix))
    plans_port, bare_port, gateway_port = (harness.free_port() for _ in range(3))
    plans_url = f"http://127.0.0.1:{plans_port}"
    env = {
        "GATEWAY_KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "GATEWAY_TOPIC_PREFIX": prefix,
        "GATEWAY_TENANT_SVC_URL": plans_url,
        "GATEWAY_USAGE_SVC_URL": plans_url,
        "GATEWAY_ONBOARDING_SVC_URL": plans_url,
        "GATEWAY_LOG_LEVEL": "WARNING",
        "PYTHONWARNINGS": "ignore",
    }
    caller = Principal(subject="bench", role=Role.USER, tenant_id=TENANT)
    token = mint_user_token(Settings(), caller, ttl_seconds=3600)
    auth = {"authorization": f"Bearer {token}"}
    uvicorn = [
        sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning",
        "--host", "127.0.0.1",
    ]  # fmt: skip
    path = f"/tenants/{TENANT}/entitlements"
    results: list[tuple[harness.Result, harness.Result]] = []
    try:
        with (
            harness.process("plans", harness.pinned(1, [sys.executable, str(HERE), "--plans", str(plans_port)])),
            harness.process("bare-entitlements", harness.pinned(0, [*uvicorn, "--port", str(bare_port), "--factory", "entitlements:bare_app", "--app-dir", str(HERE.parent)])),
            harness.process("gateway-entitlements", harness.pinned(0, [*uvicorn, "--port", str(gateway_port), "--factory", "gateway.main:create_app"]), env),
        ):  # fmt: skip
            bare_url = f"http://127.0.0.1:{bare_port}{path}"
            gateway_url = f"http://127.0.0.1:{gateway_port}{path}"
            harness.wait_http(bare_url)
            harness.wait_http(f"http://127.0.0.1:{gateway_port}/readyz")
            _wait_answer(gateway_url, auth)
            results.append(harness.load("bare FastAPI entitlements", bare_url, {}, harness.SECONDS))
            results.append(harness.load("gateway entitlements", gateway_url, auth, harness.SECONDS))
            one = f"{gateway_url}?feature=workflow_runs"
            results.append(
                harness.load("gateway ?feature=workflow_runs", one, auth, harness.SECONDS)
            )
    finally:
        asyncio.run(delete_topics(infra.kafka_bootstrap, names))
        if stop:
            stop()

    generator = "wrk (1 thread)" if shutil.which("wrk") else "asyncio raw-socket client"
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; Kafka on the same box ({infra.source}); "
        f"server under test pinned to one core: {'yes' if shutil.which('taskset') else 'no'}"
    )
    print(
        f"{harness.CLIENTS} concurrent clients, {harness.SECONDS} s per target and phase. "
        f"Saturation: closed loop ({generator}); latency: open loop, {harness.RATE:,.0f} "
        f"requests/s spread over the {harness.CLIENTS} clients (asyncio raw-socket client)"
    )
    print(
        f"{'target':<34} {'sat. req/s':>10} {'vs bare':>8} {'sat. p50':>9} {'sat. p99':>9}"
        f" {'@rate p50':>10} {'@rate p99':>10} {'errors':>7}"
    )
    bare = results[0][0].rate
    for saturated, paced in results:
        print(
            f"{saturated.name:<34} {saturated.rate:>10,.0f} {saturated.rate / bare:>8.2f}"
            f" {saturated.p50_ms:>7.2f}ms {saturated.p99_ms:>7.2f}ms"
            f" {paced.p50_ms:>8.2f}ms {paced.p99_ms:>8.2f}ms {saturated.errors + paced.errors:>7}"
        )


def _wait_answer(url: str, headers: dict[str, str]) -> None:
    """Until the gateway shows the bench tenant's totals and features (the topics are read)."""
    import time

    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = httpx.get(url, headers=headers, timeout=5)
        if response.status_code == 200 and response.json() == answer():
            return
        time.sleep(0.2)
    raise RuntimeError(f"the gateway did not answer the expected entitlements: {response.text}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--plans":
        asyncio.run(serve_plans(int(sys.argv[2])))
    else:
        main()
