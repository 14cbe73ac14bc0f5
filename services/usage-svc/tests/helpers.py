"""Helpers of usage-svc's tests: tenants, usage records, usage reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from stellara_contracts import CloudEvent, decode_event, new_event, topics
from stellara_contracts.events import Role, TenantSnapshot, TenantStatus
from stellara_contracts.producer import usage_record
from stellara_kit.db import asyncpg_dsn
from stellara_kit.testing import auth_headers, consume, produce_raw, wait_for
from usage_svc.settings import Settings

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord
    from fastapi import FastAPI


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
    *,
    plan: str = "free",
    status: TenantStatus = TenantStatus.ACTIVE,
    slug: str | None = None,
    deleted_at: datetime | None = None,
) -> TenantSnapshot:
    """A tenant; a deleted one was deleted at ``deleted_at`` (default: when it was created)."""
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
        updated_at=deleted_at or created,
        deleted_at=(deleted_at or created) if status == TenantStatus.DELETED else None,
    )


async def publish_tenants(settings: Settings, *tenants: TenantSnapshot) -> None:
    records = []
    for tenant in tenants:
        event = new_event(tenant, source="tenant-svc")
        records.append((event.key, event.to_json()))
    await produce_raw(
        settings.kafka_bootstrap_servers, settings.topic(topics.TENANT_STATE), records
    )


async def wait_for_tenant(app: FastAPI, tenant_id: UUID) -> TenantSnapshot:
    """Wait until the service's tenant directory holds the tenant (read from tenant.state)."""

    async def known() -> TenantSnapshot | None:
        found: TenantSnapshot | None = app.state.parts.directory.get(tenant_id)
        return found

    found = await wait_for(known, until=lambda t: t is not None, timeout=20, interval=0.02)
    assert found is not None
    return found


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
    """The tenant's usage per metric, as its admin sees it (``start`` is sent as ``from``)."""
    response = await http.get(
        f"/tenants/{tenant_id}/usage",
        params={("from" if k == "start" else k): v for k, v in params.items() if v is not None},
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
        # a metric outside the catalogue is listed once it has data
        return (await usage_of(http, settings, tenant_id, **params)).get(metric, {"events": 0})

    return await wait_for(probe, until=lambda m: m["events"] >= events, timeout=30)


# --------------------------------------------------------------------- what the service publishes
async def dead_letter_of(
    settings: Settings, value: bytes, *, timeout: float = 20
) -> ConsumerRecord[bytes, bytes]:
    """The record of ``usage.recorded.dlq`` whose value is ``value`` (waits for it)."""
    topic = settings.topic(topics.dlq_topic(topics.USAGE_RECORDED))

    async def find() -> list[ConsumerRecord[bytes, bytes]]:
        records = await consume(settings.kafka_bootstrap_servers, topic, timeout=1, settle=0.2)
        return [r for r in records if r.value == value]

    found = await wait_for(find, until=bool, timeout=timeout, interval=0.05)
    assert len(found) == 1, f"{len(found)} dead letters for one record"
    return found[0]


def header_map(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {key: value.decode() for key, value in record.headers or ()}


async def alerts_of(settings: Settings, tenant_id: UUID) -> list[CloudEvent]:
    """Every event on ``usage.alerts`` about the tenant, in publishing order."""
    records = await consume(
        settings.kafka_bootstrap_servers,
        settings.topic(topics.USAGE_ALERTS),
        timeout=1,
        settle=0.2,
    )
    events = [decode_event(topics.USAGE_ALERTS, r.value) for r in records]
    return [e for e in events if e.tenantid == tenant_id]


async def outbox_drained(owner_url: str, *, timeout: float = 20) -> None:
    """Wait until the relay published (and so removed) every outbox row."""

    async def pending() -> int:
        conn = await asyncpg.connect(asyncpg_dsn(owner_url))
        try:
            count: int = await conn.fetchval("SELECT count(*) FROM outbox")
            return count
        finally:
            await conn.close()

    await wait_for(pending, until=lambda n: n == 0, timeout=timeout, interval=0.05)


async def ingest_lag(settings: Settings) -> int:
    """Records of ``usage.recorded`` the ingester's consumer group has not committed yet."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    bootstrap = settings.kafka_bootstrap_servers
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.ingest_group_id)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        topic = settings.topic(topics.USAGE_RECORDED)
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()
            found = consumer.partitions_for_topic(topic) or set()
            partitions = [TopicPartition(topic, p) for p in found]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    done = {tp: meta.offset for tp, meta in committed.items()}
    return sum(max(0, end - max(done.get(tp, 0), 0)) for tp, end in ends.items())


async def metric_value(http: httpx.AsyncClient, name: str, **labels: str) -> float:
    """A sample of the service's ``/metrics`` (0 when the series does not exist yet)."""
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
