"""Automated metering: an api_calls event for every request served for a tenant."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import uuid4

import httpx
from prometheus_client import CollectorRegistry

from gateway.events import KafkaRecord, NotAcknowledged
from gateway.metering import Metering
from gateway.settings import Settings
from stellara_contracts import decode_event, topics
from stellara_contracts.events import UsageRecordedEvent
from stellara_kit.testing import Infrastructure, consume

from .conftest import StandIns, Tenants, gateway_client, gateway_settings, user_headers


async def metered(
    infrastructure: Infrastructure, topic_prefix: str, count: int
) -> list[UsageRecordedEvent]:
    records = await consume(
        infrastructure.kafka_bootstrap,
        f"{topic_prefix}{topics.USAGE_RECORDED}",
        count=count,
        timeout=15,
    )
    out = []
    for record in records:
        event = decode_event(topics.USAGE_RECORDED, record.value)
        assert isinstance(event, UsageRecordedEvent)
        assert record.key == str(event.tenantid).encode()
        assert list(record.headers) == [("content-type", b"application/cloudevents+json")]
        out.append(event)
    return out


class TestMetering:
    async def test_each_request_for_a_tenant_is_one_api_calls_event(
        self,
        client: httpx.AsyncClient,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
    ) -> None:
        acme = tenants.acme.tenant_id
        user = user_headers(settings, "user", acme)
        await client.get(f"/tenants/{acme}/config", headers=user)
        await client.get(f"/tenants/{tenants.acme.slug}/usage", headers=user)
        await client.delete(f"/tenants/{acme}", headers=user)  # refused: 403

        events = await metered(infrastructure, topic_prefix, 3)
        assert {e.data.metric for e in events} == {"api_calls"}
        assert {e.tenantid for e in events} == {acme}
        assert all(e.data.value == 1 for e in events)
        assert sorted(
            (e.data.properties["method"], e.data.properties["route"], e.data.properties["status"])
            for e in events
        ) == [
            ("DELETE", "/tenants/{id}", 403),
            ("GET", "/tenants/{id}/config", 200),
            ("GET", "/tenants/{id}/usage", 200),
        ]

    async def test_requests_for_no_known_tenant_are_not_metered(
        self,
        client: httpx.AsyncClient,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
    ) -> None:
        admin = user_headers(settings, "platform_admin")
        await client.get("/tenants", headers=admin)  # about no tenant
        await client.get(f"/tenants/{tenants.acme.tenant_id}")  # anonymous: 401
        await client.get(f"/tenants/{uuid4()}", headers=admin)  # unknown to the directory
        acme_user = user_headers(settings, "user", tenants.acme.tenant_id)
        await client.get(f"/tenants/{tenants.globex.tenant_id}", headers=acme_user)  # not theirs
        await client.get(f"/tenants/{tenants.globex.tenant_id}", headers=admin)
        [only] = await metered(infrastructure, topic_prefix, 1)
        assert only.tenantid == tenants.globex.tenant_id

    async def test_what_is_buffered_is_published_on_a_clean_shutdown(
        self,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
        downstream: StandIns,
    ) -> None:
        slow = gateway_settings(
            infrastructure, topic_prefix, downstream, metering_interval_seconds=300
        )
        headers = user_headers(slow, "user", tenants.acme.tenant_id)
        async with gateway_client(slow) as client:
            for _ in range(4):
                assert (
                    await client.get(f"/tenants/{tenants.acme.tenant_id}", headers=headers)
                ).status_code == 200
        events = await metered(infrastructure, topic_prefix, 4)
        assert len(events) == 4


class FlakyPublisher:
    """Refuses the first ``failures`` batches, then acknowledges; records what it got."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.batches: list[list[KafkaRecord]] = []

    async def publish(self, records: Sequence[KafkaRecord]) -> list[BaseException | None]:
        self.batches.append(list(records))
        if len(self.batches) <= self.failures:
            return [NotAcknowledged("down")] * len(records)
        return [None] * len(records)


def metering(publisher: FlakyPublisher, **settings: object) -> Metering:
    return Metering(Settings(**settings), publisher, CollectorRegistry())  # type: ignore[arg-type]


class TestMeteringBuffer:
    async def test_events_kafka_did_not_acknowledge_are_resent_with_the_same_ids(self) -> None:
        publisher = FlakyPublisher(failures=1)
        meter = metering(publisher)
        tenant = uuid4()
        meter.record(tenant, "/tenants/{id}", "GET", 200, 1_700_000_000.0)
        meter.record(tenant, "/plans", "GET", 200, 1_700_000_001.0)

        await meter.flush()  # refused: kept
        assert meter.pending == 2
        await meter.flush()
        assert meter.pending == 0
        assert publisher.batches[1] == publisher.batches[0]  # same events, same ids

    async def test_the_buffer_is_bounded_dropping_the_oldest(self) -> None:
        publisher = FlakyPublisher(failures=0)
        meter = metering(publisher, metering_buffer_limit=3)
        tenant = uuid4()
        for second in range(5):
            meter.record(tenant, "/plans", "GET", 200, 1_700_000_000.0 + second)
        assert meter.pending == 3
        await meter.flush()
        [batch] = publisher.batches
        times = [
            decode_event(topics.USAGE_RECORDED, value).data.occurred_at.second for _, value in batch
        ]  # type: ignore[attr-defined]
        assert times == [22, 23, 24]  # 1_700_000_002..4 seconds past the minute


class TestEncoding:
    def test_a_metering_event_is_a_valid_usage_recorded_event(self) -> None:
        meter = metering(FlakyPublisher(failures=0))
        tenant = uuid4()
        key, value = meter._event(tenant, "/tenants/{id}", "GET", 200, 1_700_000_000.5)
        event = decode_event(topics.USAGE_RECORDED, value)
        assert isinstance(event, UsageRecordedEvent)
        assert key == str(tenant).encode() == event.key
        assert event.subject == str(tenant)
        assert event.data.metric == "api_calls"
        assert event.data.value == 1
        assert event.data.occurred_at.timestamp() == 1_700_000_000.5
        assert event.data.properties == {"route": "/tenants/{id}", "method": "GET", "status": 200}
        assert event.time == event.data.occurred_at
