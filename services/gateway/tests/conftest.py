"""Fixtures: the gateway on real Kafka, in front of downstream stand-ins.

The stand-ins are small FastAPI apps served by uvicorn on free loopback
ports, one per downstream service. They answer every path, verify the
internal token the gateway sends (as the real services do) and record what
they received; tenant-svc's stand-in also answers API-key verification
from a table the test fills. Tenants reach the gateway the real way: as
TenantSnapshot events on the test's own ``tenant.state`` topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from gateway.main import create_app
from gateway.settings import Settings
from stellara_contracts import new_event, topics
from stellara_contracts.events import Role, TenantSnapshot, TenantStatus
from stellara_kit.auth import Principal, internal_verifier, mint_user_token
from stellara_kit.settings import ServiceSettings
from stellara_kit.testing import Infrastructure, produce_raw, running_app, wait_for

INTERNAL = ServiceSettings(service_name="stand-in")  # the default internal-token settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # the development secrets are short on purpose (placeholders refused in prod)
    for item in items:
        if "services/gateway/" in str(item.path):
            item.add_marker(
                pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
            )


# --------------------------------------------------------------------------- stand-ins
@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    identity: dict[str, Any] | None
    """The verified internal token's principal (None if it did not verify)."""


@dataclass
class StandIn:
    """One downstream service: records requests, answers with a recognisable body."""

    name: str
    url: str = ""
    received: list[Received] = field(default_factory=list)
    api_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    delay: float = 0.0
    answer: tuple[int, bytes, str] | None = None

    def reset(self) -> None:
        self.received.clear()
        self.api_keys.clear()
        self.delay = 0.0
        self.answer = None

    def app(self) -> FastAPI:
        app = FastAPI()
        verifier = internal_verifier(INTERNAL)

        @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"])
        async def anything(request: Request, path: str) -> Response:
            try:
                token = request.headers.get("authorization", "").removeprefix("Bearer ")
                identity: dict[str, Any] | None = verifier.verify(token).model_dump(mode="json")
            except Exception:
                identity = None
            self.received.append(
                Received(
                    request.method,
                    request.url.path,
                    request.url.query,
                    dict(request.headers),
                    await request.body(),
                    identity,
                )
            )
            if request.url.path == "/internal/api-keys/verify":
                if identity is None or identity["role"] != "platform_admin":
                    return JSONResponse({"detail": "internal callers only"}, status_code=401)
                key = (await request.json())["key"]
                found = self.api_keys.get(key)
                if found is None or found.get("revoked") or found.get("expired"):
                    return JSONResponse({"detail": "invalid key"}, status_code=401)
                return JSONResponse({k: found[k] for k in ("tenant_id", "key_id", "scopes")})
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.answer is not None:
                status, body, media = self.answer
                return Response(body, status_code=status, media_type=media)
            return JSONResponse(
                {
                    "served_by": self.name,
                    "method": request.method,
                    "path": request.url.path,
                    "data": f"secret data at {request.url.path}",
                },
                status_code=201 if request.method == "POST" else 200,
                headers={"x-served-by": self.name},
            )

        return app

    def calls(self, path_prefix: str = "/") -> list[Received]:
        return [r for r in self.received if r.path.startswith(path_prefix)]


@dataclass
class StandIns:
    tenant: StandIn
    usage: StandIn
    onboarding: StandIn

    def all(self) -> list[StandIn]:
        return [self.tenant, self.usage, self.onboarding]

    def received(self) -> list[Received]:
        return [r for s in self.all() for r in s.received if not r.path.startswith("/internal/")]

    def reset(self) -> None:
        for s in self.all():
            s.reset()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_for(lambda: _started(server), timeout=10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def _started(server: uvicorn.Server) -> bool:
    return server.started


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stand_ins() -> AsyncIterator[StandIns]:
    services = StandIns(StandIn("tenant-svc"), StandIn("usage-svc"), StandIn("onboarding-svc"))
    async with contextlib.AsyncExitStack() as stack:
        for service in services.all():
            service.url = await stack.enter_async_context(serve(service.app()))
        yield services


@pytest.fixture
def downstream(stand_ins: StandIns) -> Iterator[StandIns]:
    stand_ins.reset()
    yield stand_ins
    stand_ins.reset()


# --------------------------------------------------------------------------- tenants
def snapshot(
    slug: str,
    *,
    status: TenantStatus = TenantStatus.ACTIVE,
    plan: str = "pro",
    version: int = 1,
    tenant_id: UUID | None = None,
    reason: str | None = None,
) -> TenantSnapshot:
    now = datetime.now(UTC)
    return TenantSnapshot(
        tenant_id=tenant_id or uuid4(),
        slug=slug,
        name=f"{slug.title()} Corp",
        plan=plan,
        status=status,
        status_reason=reason,
        version=version,
        created_at=now,
        updated_at=now,
    )


@dataclass
class Tenants:
    acme: TenantSnapshot
    globex: TenantSnapshot
    suspended: TenantSnapshot
    pending: TenantSnapshot
    deleted: TenantSnapshot

    def all(self) -> list[TenantSnapshot]:
        return [self.acme, self.globex, self.suspended, self.pending, self.deleted]


def unique(slug: str) -> str:
    return f"{slug}-{uuid4().hex[:6]}"


def new_tenants() -> Tenants:
    return Tenants(
        acme=snapshot(unique("acme")),
        globex=snapshot(unique("globex")),
        suspended=snapshot(
            unique("initech"), status=TenantStatus.SUSPENDED, reason="Unpaid invoice 2026-11"
        ),
        pending=snapshot(unique("hooli"), status=TenantStatus.PENDING),
        deleted=snapshot(unique("umbrella"), status=TenantStatus.DELETED),
    )


async def publish_snapshots(
    infrastructure: Infrastructure, prefix: str, *snapshots: TenantSnapshot
) -> None:
    events = [new_event(s, source="tenant-svc") for s in snapshots]
    await produce_raw(
        infrastructure.kafka_bootstrap,
        f"{prefix}{topics.TENANT_STATE}",
        [(e.key, e.to_json()) for e in events],
    )


# --------------------------------------------------------------------------- the gateway
def gateway_settings(
    infrastructure: Infrastructure, prefix: str, stand_ins: StandIns, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "kafka_bootstrap_servers": infrastructure.kafka_bootstrap,
        "topic_prefix": prefix,
        "consumer_group": f"{prefix}gateway",
        "log_json": False,
        "tenant_svc_url": stand_ins.tenant.url,
        "usage_svc_url": stand_ins.usage.url,
        "onboarding_svc_url": stand_ins.onboarding.url,
        "downstream_timeout_seconds": 2.0,
        "api_key_cache_seconds": 0.5,
        "metering_interval_seconds": 0.2,
        "rate_limit_per_plan": {"pro": 1000.0, "free": 2.0},
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def tenants() -> Tenants:
    return new_tenants()


@pytest_asyncio.fixture
async def settings(
    infrastructure: Infrastructure, topic_prefix: str, downstream: StandIns, tenants: Tenants
) -> Settings:
    await publish_snapshots(infrastructure, topic_prefix, *tenants.all())
    return gateway_settings(infrastructure, topic_prefix, downstream)


@contextlib.asynccontextmanager
async def gateway_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway running in-process on real Kafka, its tenant directory caught up."""
    async with running_app(create_app(settings)) as http:
        await wait_until_ready(http)
        yield http


@pytest_asyncio.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway of the test (default settings, the test's tenants)."""
    async with gateway_client(settings) as http:
        yield http


async def wait_until_ready(http: httpx.AsyncClient) -> None:
    await wait_for(lambda: http.get("/readyz"), until=lambda r: r.status_code == 200, timeout=30)


# --------------------------------------------------------------------------- credentials
def bearer(settings: Settings, token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def user_headers(
    settings: Settings,
    role: Role | str,
    tenant_id: UUID | None = None,
    *,
    subject: str = "user-1",
    email: str | None = None,
) -> dict[str, str]:
    """``Authorization`` with a user token the gateway accepts."""
    principal = Principal(subject=subject, role=Role(role), tenant_id=tenant_id, email=email)
    return bearer(settings, mint_user_token(settings, principal))


def api_key_for(
    downstream: StandIns, tenant_id: UUID, scopes: list[str], *, key: str | None = None
) -> str:
    """A key the tenant-svc stand-in reports valid."""
    key = key or f"sk_{uuid4().hex}"
    downstream.tenant.api_keys[key] = {
        "tenant_id": str(tenant_id),
        "key_id": str(uuid4()),
        "scopes": scopes,
    }
    return key
