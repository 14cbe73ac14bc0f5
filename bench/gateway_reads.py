"""Gateway reads under 200 concurrent clients, next to a bare FastAPI JSON endpoint.

Measured in the same run, on the same machine, each server in its own process:

- the baseline: a bare FastAPI app (uvicorn, one process) answering
  ``GET /tenants/{id}`` with a JSON body;
- the gateway (uvicorn, one process, real Kafka: the tenant directory reads
  ``tenant.state`` and every request is metered to ``usage.recorded``) serving
  ``GET /tenants/{id}``, ``GET /tenants/{id}/config`` and ``GET /tenants/{id}/usage``
  with a user token: JWT check, tenant resolution and guard, rate limit, an
  internal token, and a pooled HTTP call to the owning service.

The owning services are replaced by a stand-in: a raw-asyncio HTTP/1.1
responder in its own process that returns a canned JSON body of the same
size as the baseline's, so what is measured is the gateway's own overhead
plus one loopback hop, not the services' database work.

Two phases per target, both with 200 concurrent connections from a separate
load process:
- saturation (closed loop: every client sends its next request as soon as the
  answer came) gives the throughput and the ratio to the bare endpoint; its
  latencies are queueing time (200 / throughput) more than service time;
- latency at a fixed offered rate (open loop: ``BENCH_RATE`` requests/s spread
  evenly over the 200 clients, latency counted from the scheduled send time so
  a stall is not hidden) gives p50/p99 for a loaded but not saturated server.

Saturation load comes from ``wrk`` when installed (``apt-get install wrk``),
else from the built-in asyncio raw-socket client, which also does the paced
phase. With ``taskset`` available, the server under test gets CPU 0 and the
load generator and the stand-in CPU 1, so both servers run on one core each.

    make bench-gateway     # BENCH_SECONDS=10 BENCH_CLIENTS=200 BENCH_RATE=500 to change
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
WARMUP_SECONDS = 2
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "200"))
RATE = float(os.environ.get("BENCH_RATE", "500"))
TENANT = uuid.UUID("5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11")
BODY = {
    "id": str(TENANT),
    "slug": "bench",
    "name": "Bench Corp",
    "plan": "bench",
    "status": "active",
    "status_reason": None,
    "metadata": {"region": "eu"},
    "version": 3,
    "allowed_transitions": ["suspended", "deleted"],
    "created_at": "2026-12-01T10:00:00Z",
    "updated_at": "2026-12-01T10:00:00Z",
    "deleted_at": None,
}
HERE = Path(__file__).resolve()


# --------------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: int, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu), *command]
    return command


LOGS = Path(os.environ.get("STELLARA_HOME", HERE.parent.parent / ".stellara")) / "logs"


@contextlib.contextmanager
def process(
    name: str, command: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in its own process; its output goes to ``.stellara/logs/bench-<name>.log``."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"bench-{name}.log", "wb") as log:
        proc = subprocess.Popen(
            command, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_http(url: str, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


# --------------------------------------------------------------------------- the stand-in
async def serve_stand_in(port: int) -> None:
    """A minimal keep-alive HTTP/1.1 responder: every request gets the canned JSON body."""
    body = json.dumps(BODY).encode()
    response = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                match = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
                if match:
                    await reader.readexactly(int(match.group(1)))
                writer.write(response)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


# --------------------------------------------------------------------------- the baseline
def bare_app():  # type: ignore[no-untyped-def]
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/tenants/{tenant_id}")
    async def get_tenant(tenant_id: str) -> dict[str, object]:
        return BODY

    return app


# --------------------------------------------------------------------------- load generators
@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(name: str, url: str, headers: dict[str, str], seconds: int) -> Result:
    command = ["wrk", "-t1", f"-c{CLIENTS}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    out = subprocess.run(
        pinned(1, [*command, url]), capture_output=True, text=True, check=True
    ).stdout

    def percentile(p: str) -> float:
        match = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        assert match, out
        return float(match.group(1)) * _WRK_UNITS[match.group(2)]

    total = re.search(r"(\d+) requests in ([\d.]+)(ms|s)", out)
    assert total, out
    elapsed = float(total.group(2)) * (0.001 if total.group(3) == "ms" else 1.0)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        failed += sum(int(g) for g in socket_errors.groups())
    return Result(name, int(total.group(1)), elapsed, percentile("50"), percentile("99"), failed)


async def _client(
    host: str,
    port: int,
    request: bytes,
    stop_at: float,
    latencies: list[float],
    *,
    first: float | None = None,
    interval: float | None = None,
) -> int:
    """One connection: back to back (closed loop), or one request every ``interval`` seconds
    from ``first`` (open loop; latency counts from the scheduled time, so a slow answer
    that delays the next request is not hidden)."""
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    sent = 0
    try:
        while time.monotonic() < stop_at:
            if interval is None or first is None:
                started = time.perf_counter()
            else:
                scheduled = first + sent * interval
                delay = scheduled - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                started = time.perf_counter() - max(0.0, -delay)
                sent += 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
            await reader.readexactly(int(match.group(1)) if match else 0)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 2"):
                errors += 1
    finally:
        writer.close()
    return errors


async def _python_load(
    url: str, headers: dict[str, str], seconds: int, rate: float = 0.0
) -> tuple[list[float], int, float]:
    match = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    assert match
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    lines = [f"GET {path} HTTP/1.1", f"host: {host}:{port}"] + [
        f"{k}: {v}" for k, v in headers.items()
    ]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    latencies: list[float] = []
    started = time.monotonic()
    stop_at = started + seconds
    interval = CLIENTS / rate if rate else None
    errors = await asyncio.gather(
        *(
            _client(
                host,
                port,
                request,
                stop_at,
                latencies,
                first=started + (i * interval / CLIENTS if interval else 0.0),
                interval=interval,
            )
            for i in range(CLIENTS)
        )
    )
    return latencies, sum(errors), time.monotonic() - started


def python_load(
    name: str, url: str, headers: dict[str, str], seconds: int, rate: float = 0.0
) -> Result:
    """The built-in load generator, run in its own process (``rate`` 0: as fast as it goes)."""
    command = [
        sys.executable, str(HERE), "--load", url, json.dumps(headers), str(seconds), str(rate)
    ]  # fmt: skip
    out = json.loads(
        subprocess.run(pinned(1, command), capture_output=True, text=True, check=True).stdout
    )
    return Result(
        name, out["requests"], out["seconds"], out["p50_ms"], out["p99_ms"], out["errors"]
    )


def load(name: str, url: str, headers: dict[str, str], seconds: int) -> tuple[Result, Result]:
    """Saturation (closed loop), then latency at the fixed rate ``RATE`` (open loop)."""
    generator = wrk if shutil.which("wrk") else python_load
    generator(name, url, headers, WARMUP_SECONDS)
    saturated = generator(name, url, headers, seconds)
    paced = python_load(name, url, headers, seconds, RATE)
    return saturated, paced


# --------------------------------------------------------------------------- the run
async def prepare_topics(bootstrap: str, prefix: str) -> list[str]:
    from stellara_contracts import new_event, topics
    from stellara_contracts.events import TenantSnapshot, TenantStatus
    from stellara_kit.kafka_admin import ensure_topics
    from stellara_kit.testing import produce_raw

    names = [f"{prefix}{t}" for t in topics.ALL_TOPICS]
    await ensure_topics(
        bootstrap, names, partitions=2, compacted={f"{prefix}{t}" for t in topics.COMPACTED_TOPICS}
    )
    now = datetime.now(UTC)
    snapshot = TenantSnapshot(
        tenant_id=TENANT, slug="bench", name="Bench Corp", plan="bench",
        status=TenantStatus.ACTIVE, version=1, created_at=now, updated_at=now,
    )  # fmt: skip
    event = new_event(snapshot, source="bench")
    await produce_raw(bootstrap, f"{prefix}{topics.TENANT_STATE}", [(event.key, event.to_json())])
    return names


def main() -> None:
    from stellara_contracts.events import Role
    from stellara_kit.auth import Principal, UserTokenSettings, mint_user_token
    from stellara_kit.kafka_admin import delete_topics
    from stellara_kit.testing.infra import discover

    infra, stop = discover()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    names = asyncio.run(prepare_topics(infra.kafka_bootstrap, prefix))
    stand_in_port, bare_port, gateway_port = free_port(), free_port(), free_port()
    stand_in_url = f"http://127.0.0.1:{stand_in_port}"
    env = {
        "GATEWAY_KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "GATEWAY_TOPIC_PREFIX": prefix,
        "GATEWAY_TENANT_SVC_URL": stand_in_url,
        "GATEWAY_USAGE_SVC_URL": stand_in_url,
        "GATEWAY_ONBOARDING_SVC_URL": stand_in_url,
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_RATE_LIMIT_PER_PLAN": json.dumps({"bench": 1_000_000}),
        "PYTHONWARNINGS": "ignore",
    }
    # the secret, audience and issuer the gateway process reads too
    caller = Principal(subject="bench", role=Role.USER, tenant_id=TENANT)
    token = mint_user_token(UserTokenSettings(), caller, ttl_seconds=3600)
    auth = {"authorization": f"Bearer {token}"}
    uvicorn = [
        sys.executable,
        "-m",
        "uvicorn",
        "--no-access-log",
        "--log-level",
        "warning",
        "--host",
        "127.0.0.1",
    ]
    results: list[tuple[Result, Result]] = []
    try:
        with (
            process("stand-in", pinned(1, [sys.executable, str(HERE), "--stand-in", str(stand_in_port)])),
            process("bare", pinned(0, [*uvicorn, "--port", str(bare_port), "--factory", "gateway_reads:bare_app", "--app-dir", str(HERE.parent)])),
            process("gateway", pinned(0, [*uvicorn, "--port", str(gateway_port), "--factory", "gateway.main:create_app"]), env),
        ):  # fmt: skip
            wait_http(f"http://127.0.0.1:{bare_port}/tenants/{TENANT}")
            wait_http(f"http://127.0.0.1:{gateway_port}/readyz")
            bare_url = f"http://127.0.0.1:{bare_port}/tenants/{TENANT}"
            results.append(load("bare FastAPI GET /tenants/{id}", bare_url, {}, SECONDS))
            for path in ("", "/config", "/usage"):
                url = f"http://127.0.0.1:{gateway_port}/tenants/{TENANT}{path}"
                results.append(load(f"gateway GET /tenants/{{id}}{path}", url, auth, SECONDS))
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
        f"{CLIENTS} concurrent clients, {SECONDS} s per target and phase ({WARMUP_SECONDS} s warm-up). "
        f"Saturation: closed loop ({generator}); latency: open loop, {RATE:,.0f} requests/s "
        f"spread over the {CLIENTS} clients (asyncio raw-socket client)"
    )
    header = (
        f"{'target':<36} {'sat. req/s':>10} {'vs bare':>8} {'sat. p50':>9} {'sat. p99':>9}"
        f" {'@rate p50':>10} {'@rate p99':>10} {'errors':>7}"
    )
    print(header)
    bare = results[0][0].rate
    for saturated, paced in results:
        print(
            f"{saturated.name:<36} {saturated.rate:>10,.0f} {saturated.rate / bare:>8.2f}"
            f" {saturated.p50_ms:>7.2f}ms {saturated.p99_ms:>7.2f}ms"
            f" {paced.p50_ms:>8.2f}ms {paced.p99_ms:>8.2f}ms {saturated.errors + paced.errors:>7}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--stand-in":
        asyncio.run(serve_stand_in(int(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--load":
        found, failed, took = asyncio.run(
            _python_load(sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
        )
        found.sort()
        print(
            json.dumps(
                {
                    "requests": len(found),
                    "seconds": took,
                    "p50_ms": found[len(found) // 2] * 1000,
                    "p99_ms": found[int(len(found) * 0.99)] * 1000,
                    "errors": failed,
                }
            )
        )
    else:
        main()
