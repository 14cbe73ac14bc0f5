"""Helpers for tests and benchmarks of usage-svc: tenants, usage records, usage reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx

from stellara_contracts import new_event, topics
from stellara_contracts.events import Role, TenantSnapshot, TenantStatus
from stellara_contracts.producer import usage_record
from stellara_kit.testing import auth_headers, produce_raw, wait_for
from usage_svc.settings import Settings


async def wait_ready(http: httpx.AsyncClient) -> None:
    async def ready() -> int:
        return (await http.get("/readyz")).status_code

    await wait_for(ready, until=lambda status: status == 200, timeout=30)


# --------------------------------------------------------------------- tenants
@dataclass(frozen=True)
class Tenants:
    free: TenantSnapshot
    starter: TenantSnapshot
    deleted: TenantSnapshot


def snapshot(
    *, plan: str = "free", status: TenantStatus = TenantStatus.ACTIVE, slug: str | None = None
) -> TenantSnapshot:
    tenant_id = uuid4()
    created = datetime(2025, 1, 1, tzinfo=UTC)
    return TenantSnapshot(
        tenant_id=tenant_id,
        slug=slug or f"t-{tenant_id.hex[:8]}",
        name="Test tenant",
        plan=plan,
        status=status,
        version=1,
        created_at=created,
        updated_at=created,
    )


async def publish_tenants(settings: Settings, *tenants: TenantSnapshot) -> None:
    records = []
    for tenant in tenants:
        event = new_event(tenant, source="tenant-svc")
        records.append((event.key, event.to_json()))
    await produce_raw(
        settings.kafka_bootstrap_servers, settings.topic(topics.TENANT_STATE), records
    )


# --------------------------------------------------------------------- usage
def record(
    tenant_id: UUID,
    metric: str = "api_calls",
    value: float = 1,
    *,
    occurred_at: datetime | None = None,
    event_id: UUID | None = None,
    properties: dict[str, Any] | None = None,
) -> tuple[bytes, bytes]:
    return usage_record(
        tenant_id,
        metric,
        value,
        source="test",
        occurred_at=occurred_at or datetime.now(UTC),
        event_id=event_id or uuid4(),
        properties=properties,
    )


async def produce_usage(settings: Settings, records: Iterable[tuple[bytes | None, bytes]]) -> None:
    await produce_raw(
        settings.kafka_bootstrap_servers, settings.topic(topics.USAGE_RECORDED), list(records)
    )


def headers(
    settings: Settings, tenant_id: UUID | None = None, role: Role = Role.TENANT_ADMIN
) -> dict[str, str]:
    if tenant_id is None:
        return auth_headers(settings, role=Role.PLATFORM_ADMIN)
    return auth_headers(settings, role=role, tenant_id=tenant_id)


async def usage_of(
    http: httpx.AsyncClient, settings: Settings, tenant_id: UUID, **params: Any
) -> dict[str, dict[str, Any]]:
    """The tenant's usage per metric, as its admin sees it."""
    response = await http.get(
        f"/tenants/{tenant_id}/usage",
        params={k: v for k, v in params.items() if v is not None},
        headers=headers(settings, tenant_id),
    )
    assert response.status_code == 200, response.text
    return {item["metric"]: item for item in response.json()["metrics"]}


async def wait_for_events(
    http: httpx.AsyncClient,
    settings: Settings,
    tenant_id: UUID,
    metric: str,
    events: int,
    **params: Any,
) -> dict[str, Any]:
    """Poll the usage API until ``metric`` counts ``events`` events; returns its figures."""

    async def probe() -> dict[str, Any]:
        return (await usage_of(http, settings, tenant_id, **params))[metric]

    return await wait_for(probe, until=lambda m: m["events"] >= events, timeout=30)
