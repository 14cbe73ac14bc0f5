"""Usage ingestion over HTTP: answered 202 once Kafka acknowledged; the events are on the topic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import orjson
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from gateway import events as gateway_events
from gateway.ingestion import derived_event_id
from gateway.settings import Settings
from stellara_contracts import decode_event, new_event, topics
from stellara_contracts.events import UsageRecorded, UsageRecordedEvent
from stellara_kit.testing import Infrastructure, consume

from .conftest import StandIns, Tenants, api_key_for, gateway_client, gateway_settings, user_headers

NOW = datetime.now(UTC).isoformat()


def event(metric: str = "workflow_runs", value: Any = 1, **extra: Any) -> dict[str, Any]:
    return {"metric": metric, "value": value, "occurred_at": NOW} | extra


@pytest_asyncio.fixture
async def ingest(
    infrastructure: Infrastructure, topic_prefix: str, settings: Settings, downstream: StandIns
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway without its own metering, so the topic holds only what tests send."""
    quiet = gateway_settings(infrastructure, topic_prefix, downstream, metering_enabled=False)
    async with gateway_client(quiet) as client:
        yield client


async def recorded(
    infrastructure: Infrastructure, topic_prefix: str, count: int
) -> list[UsageRecordedEvent]:
    records = await consume(
        infrastructure.kafka_bootstrap,
        f"{topic_prefix}{topics.USAGE_RECORDED}",
        count=count,
        timeout=15,
    )
    events = []
    for record in records:
        decoded = decode_event(topics.USAGE_RECORDED, record.value)
        assert isinstance(decoded, UsageRecordedEvent)
        assert record.key == str(decoded.tenantid).encode()
        assert list(record.headers) == [("content-type", b"application/cloudevents+json")]
        events.append(decoded)
    return events


class TestAccepted:
    async def test_a_json_array_is_on_the_topic_when_the_answer_comes(
        self,
        ingest: httpx.AsyncClient,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
        batch = [event(value=i, properties={"workflow": "nightly"}) for i in range(1, 4)]
        response = await ingest.post("/usage/events", headers=headers, json=batch)
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["accepted"] == 3 and body["rejected"] == 0 and body["errors"] == []

        events = await recorded(infrastructure, topic_prefix, 3)
        assert sorted(str(e.id) for e in events) == sorted(body["ids"])
        assert {e.tenantid for e in events} == {tenants.acme.tenant_id}
        assert sorted(e.data.value for e in events) == [1, 2, 3]
        assert events[0].data.properties == {"workflow": "nightly"}

    async def test_the_documented_batch_object_is_on_the_topic(
        self,
        ingest: httpx.AsyncClient,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
        batch = {"events": [event(value=2), event(value=3)]}
        response = await ingest.post("/usage/events", headers=headers, json=batch)
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == 2
        values = sorted(e.data.value for e in await recorded(infrastructure, topic_prefix, 2))
        assert values == [2, 3]

    async def test_a_batch_object_with_more_than_events_is_refused(
        self, ingest: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
        for body in ({"events": [event()], "tenant": "x"}, {"events": event()}):
            response = await ingest.post("/usage/events", headers=headers, json=body)
            assert response.status_code == 422, response.text
            assert response.json()["type"].endswith("not-a-batch")

    async def test_ndjson_is_accepted(
        self,
        ingest: httpx.AsyncClient,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
        lines = b"\n".join(orjson.dumps(event(value=v)) for v in (5, 7)) + b"\n"
        response = await ingest.post(
            "/usage/events",
            headers=headers | {"content-type": "application/x-ndjson"},
            content=lines,
        )
        assert response.status_code == 202, response.text
        assert sorted(e.data.value for e in await recorded(infrastructure, topic_prefix, 2)) == [
            5,
            7,
        ]

    async def test_a_cloudevents_batch_keeps_its_envelope(
        self,
        ingest: httpx.AsyncClient,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
    ) -> None:
        acme = tenants.acme.tenant_id
        cloud = new_event(
            UsageRecorded(
                tenant_id=acme, metric="storage_gb", value=2.5, occurred_at=datetime.now(UTC)
            ),
            source="billing-worker",
        )
        response = await ingest.post(
            "/usage/events",
            headers=user_headers(settings, "tenant_admin", acme)
            | {"content-type": "application/cloudevents-batch+json"},
            content=b"[" + cloud.to_json() + b"]",
        )
        assert response.status_code == 202, response.text
        [stored] = await recorded(infrastructure, topic_prefix, 1)
        assert stored.id == cloud.id
        assert stored.source == "billing-worker"
        assert stored.data.metric == "storage_gb"

    async def test_a_client_id_is_the_events_id_so_a_resend_never_counts_twice(
        self,
        ingest: httpx.AsyncClient,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
    ) -> None:
        event_id = str(uuid4())
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
        for _ in range(2):
            response = await ingest.post(
                "/usage/events", headers=headers, json=[event(id=event_id)]
            )
            assert response.json()["ids"] == [event_id]
        assert {str(e.id) for e in await recorded(infrastructure, topic_prefix, 2)} == {event_id}

    async def test_an_api_key_with_usage_write_records_for_its_tenant(
        self,
        ingest: httpx.AsyncClient,
        infrastructure: Infrastructure,
        topic_prefix: str,
        tenants: Tenants,
        downstream: StandIns,
    ) -> None:
        key = api_key_for(downstream, tenants.globex.tenant_id, ["usage:write"])
        response = await ingest.post("/usage/events", headers={"x-api-key": key}, json=[event()])
        assert response.status_code == 202
        [stored] = await recorded(infrastructure, topic_prefix, 1)
        assert stored.tenantid == tenants.globex.tenant_id

    async def test_a_platform_admin_names_the_tenant_with_the_header(
        self,
        ingest: httpx.AsyncClient,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
    ) -> None:
        admin = user_headers(settings, "platform_admin")
        unnamed = await ingest.post("/usage/events", headers=admin, json=[event()])
        named = await ingest.post(
            "/usage/events", headers=admin | {"x-tenant-id": tenants.globex.slug}, json=[event()]
        )
        assert unnamed.status_code == 404
        assert named.status_code == 202
        [stored] = await recorded(infrastructure, topic_prefix, 1)
        assert stored.tenantid == tenants.globex.tenant_id


class TestPartialBatches:
    async def test_invalid_events_are_reported_by_index_and_the_valid_ones_recorded(
        self,
        ingest: httpx.AsyncClient,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
    ) -> None:
        batch = [
            event(value=1),
            event(metric="Not A Metric"),
            event(value=2),
            "not an object",
            event(tenant_id=str(tenants.globex.tenant_id)),
            event(value="lots"),
            {"metric": "workflow_runs", "value": 1},  # no occurred_at
        ]
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
        response = await ingest.post("/usage/events", headers=headers, json=batch)
        assert response.status_code == 202
        body = response.json()
        assert body["accepted"] == 2 and body["rejected"] == 5
        assert [e["index"] for e in body["errors"]] == [1, 3, 4, 5, 6]
        assert "metric" in body["errors"][0]["errors"][0]
        assert "own tenant" in body["errors"][2]["errors"][0]
        events = await recorded(infrastructure, topic_prefix, 2)
        assert sorted(str(e.id) for e in events) == sorted(body["ids"])
        assert {e.tenantid for e in events} == {tenants.acme.tenant_id}

    async def test_a_batch_with_no_valid_event_is_422_and_records_nothing(
        self,
        ingest: httpx.AsyncClient,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
        response = await ingest.post("/usage/events", headers=headers, json=[event(value=None)])
        assert response.status_code == 422
        assert response.json()["errors"][0]["index"] == 0
        marker = await ingest.post("/usage/events", headers=headers, json=[event(value=42)])
        [only] = await recorded(infrastructure, topic_prefix, 1)
        assert str(only.id) == marker.json()["ids"][0]

    async def test_another_tenants_cloudevent_is_refused_by_index(
        self, ingest: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        mine, theirs = (
            new_event(
                UsageRecorded(
                    tenant_id=t, metric="api_calls", value=1, occurred_at=datetime.now(UTC)
                ),
                source="client",
            )
            for t in (tenants.acme.tenant_id, tenants.globex.tenant_id)
        )
        content = json.dumps([json.loads(mine.to_json()), json.loads(theirs.to_json())])
        response = await ingest.post(
            "/usage/events",
            headers=user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
            | {"content-type": "application/cloudevents-batch+json"},
            content=content,
        )
        assert response.status_code == 202
        assert response.json()["accepted"] == 1
        assert [e["index"] for e in response.json()["errors"]] == [1]


class TestRefused:
    async def test_a_user_may_not_write_usage(
        self, ingest: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        headers = user_headers(settings, "user", tenants.acme.tenant_id)
        assert (
            await ingest.post("/usage/events", headers=headers, json=[event()])
        ).status_code == 403

    async def test_a_key_without_usage_write_may_not(
        self, ingest: httpx.AsyncClient, tenants: Tenants, downstream: StandIns
    ) -> None:
        key = api_key_for(downstream, tenants.acme.tenant_id, ["tenant:read"])
        response = await ingest.post("/usage/events", headers={"x-api-key": key}, json=[event()])
        assert response.status_code == 403

    async def test_no_writing_for_another_tenant_through_the_header(
        self, ingest: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id) | {
            "x-tenant-id": str(tenants.globex.tenant_id)
        }
        assert (
            await ingest.post("/usage/events", headers=headers, json=[event()])
        ).status_code == 403

    async def test_a_body_over_the_limit_is_413(
        self,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
        downstream: StandIns,
    ) -> None:
        small = gateway_settings(infrastructure, topic_prefix, downstream, max_body_bytes=2048)
        async with gateway_client(small) as client:
            headers = user_headers(small, "tenant_admin", tenants.acme.tenant_id)
            response = await client.post("/usage/events", headers=headers, json=[event()] * 50)
        assert response.status_code == 413
        assert response.json()["max_bytes"] == 2048

    async def test_more_events_than_the_batch_limit_is_413(
        self, ingest: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
        response = await ingest.post("/usage/events", headers=headers, json=[event()] * 1001)
        assert response.status_code == 413
        assert response.json()["max_events"] == 1000

    async def test_other_media_types_are_415_and_broken_json_400(
        self, ingest: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
        xml = await ingest.post(
            "/usage/events", headers=headers | {"content-type": "application/xml"}, content=b"<e/>"
        )
        broken = await ingest.post(
            "/usage/events", headers=headers | {"content-type": "application/json"}, content=b"[{"
        )
        assert xml.status_code == 415
        assert broken.status_code == 400


class TestRateLimit:
    async def test_a_tenant_over_its_plans_rate_gets_429_with_retry_after(
        self,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
        downstream: StandIns,
    ) -> None:
        limited = gateway_settings(
            infrastructure,
            topic_prefix,
            downstream,
            metering_enabled=False,
            rate_limit_per_plan={"pro": 1.0},
            rate_limit_burst_seconds=3.0,
        )
        async with gateway_client(limited) as client:
            headers = user_headers(limited, "tenant_admin", tenants.acme.tenant_id)
            statuses = [
                (await client.post("/usage/events", headers=headers, json=[event()])).status_code
                for _ in range(3)
            ]
            refused = await client.post("/usage/events", headers=headers, json=[event()])
            other_tenant = await client.post(
                "/usage/events",
                headers=user_headers(limited, "tenant_admin", tenants.globex.tenant_id),
                json=[event()],
            )
        assert statuses == [202, 202, 202]
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert other_tenant.status_code == 202  # each tenant has its own bucket


class TestTheContract:
    """HTTP ingestion accepts exactly what the UsageRecorded schema accepts, as Kafka does."""

    async def test_a_value_past_the_bound_is_422_naming_the_field(
        self, ingest: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
        response = await ingest.post("/usage/events", headers=headers, json=[event(value=1.7e308)])
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["errors"][0]["index"] == 0
        assert body["errors"][0]["errors"][0].startswith("value:")
        assert "events[0].value" in body["detail"]

    async def test_the_bound_itself_is_accepted(
        self,
        ingest: httpx.AsyncClient,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
        response = await ingest.post("/usage/events", headers=headers, json=[event(value=1e15)])
        assert response.status_code == 202, response.text
        [stored] = await recorded(infrastructure, topic_prefix, 1)
        assert stored.data.value == 1e15

    async def test_what_the_schema_refuses_is_refused_by_index_and_field(
        self, ingest: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        acme = tenants.acme.tenant_id
        batch = [
            event(value="16"),
            event(value=True),
            event(occurred_at=1764756000),
            event(occurred_at=NOW.replace("T", " ")),
            event(id=uuid4().hex),
            event(properties=None),
            event(properties={"bytes": 10**16}),
            event(value=-1e16),
            event(),
        ]
        headers = user_headers(settings, "tenant_admin", acme)
        response = await ingest.post("/usage/events", headers=headers, json=batch)
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["accepted"] == 1
        fields = [e["errors"][0].split(":")[0] for e in body["errors"]]
        assert fields == [
            "value",
            "value",
            "occurred_at",
            "occurred_at",
            "id",
            "properties",
            "properties.bytes",
            "value",
        ]

    async def test_a_cloudevent_without_id_or_type_is_refused(
        self, ingest: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        acme = tenants.acme.tenant_id
        cloud = json.loads(
            new_event(
                UsageRecorded(
                    tenant_id=acme, metric="api_calls", value=1, occurred_at=datetime.now(UTC)
                ),
                source="client",
            ).to_json()
        )
        without_id = {k: v for k, v in cloud.items() if k != "id"}
        without_type = {k: v for k, v in cloud.items() if k != "type"}
        future = cloud | {"type": "stellara.usage.recorded.v2"}
        response = await ingest.post(
            "/usage/events",
            headers=user_headers(settings, "tenant_admin", acme)
            | {"content-type": "application/cloudevents-batch+json"},
            content=json.dumps([without_id, without_type, future, cloud]),
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["accepted"] == 1
        assert [e["errors"][0].split(":")[0] for e in body["errors"]] == ["id", "type", "type"]


class TestUnconfirmed:
    """Kafka that takes the records but does not acknowledge them in time: the answer says
    they may be recorded, names their ids, and a resend with the same Idempotency-Key gives
    the same ids again (so usage-svc, deduplicating by id, counts each event once)."""

    @pytest_asyncio.fixture
    async def stalled(
        self,
        infrastructure: Infrastructure,
        topic_prefix: str,
        downstream: StandIns,
        settings: Settings,
        monkeypatch: pytest.MonkeyPatch,
    ) -> AsyncIterator[tuple[httpx.AsyncClient, asyncio.Event]]:
        acknowledge = asyncio.Event()

        class StalledAcks(AIOKafkaProducer):
            """Sends for real; hands the acknowledgement on only once ``acknowledge`` is set."""

            async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
                delivered = await super().send(*args, **kwargs)
                late: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

                async def hand_on() -> None:
                    await acknowledge.wait()
                    late.set_result(await delivered)

                background.add(asyncio.ensure_future(hand_on()))
                return late

        background: set[asyncio.Future[None]] = set()
        monkeypatch.setattr(gateway_events, "AIOKafkaProducer", StalledAcks)
        quiet = gateway_settings(
            infrastructure,
            topic_prefix,
            downstream,
            metering_enabled=False,
            kafka_ack_timeout_seconds=0.5,
        )
        async with gateway_client(quiet) as client:
            yield client, acknowledge
            acknowledge.set()
            await asyncio.gather(*background)

    async def test_the_503_says_may_have_been_recorded_and_a_resend_gives_the_same_ids(
        self,
        stalled: tuple[httpx.AsyncClient, asyncio.Event],
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
    ) -> None:
        client, acknowledge = stalled
        tenant = tenants.acme.tenant_id
        headers = user_headers(settings, "tenant_admin", tenant) | {"idempotency-key": "batch-7"}
        batch = [event(), event(value=2), event(value=3)]

        first = await client.post("/usage/events", headers=headers, json=batch)

        assert first.status_code == 503, first.text
        assert first.headers["content-type"] == "application/problem+json"
        assert first.headers["retry-after"] == "1"
        problem = first.json()
        assert "may have been recorded" in problem["detail"]
        expected = [str(derived_event_id(tenant, "batch-7", n)) for n in range(3)]
        assert problem["ids"] == expected
        # they were recorded all the same: the producer delivered them
        assert [str(e.id) for e in await recorded(infrastructure, topic_prefix, 3)] == expected

        acknowledge.set()
        again = await client.post("/usage/events", headers=headers, json=batch)
        assert again.status_code == 202, again.text
        assert again.json()["ids"] == expected
        on_topic = await recorded(infrastructure, topic_prefix, 6)
        assert {str(e.id) for e in on_topic} == set(expected)  # one id per event, twice

    async def test_without_an_idempotency_key_the_503_names_the_ids_to_resend(
        self,
        stalled: tuple[httpx.AsyncClient, asyncio.Event],
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
    ) -> None:
        client, _ = stalled
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)

        first = await client.post("/usage/events", headers=headers, json=[event()])

        assert first.status_code == 503, first.text
        [named] = first.json()["ids"]
        [stored] = await recorded(infrastructure, topic_prefix, 1)
        assert str(stored.id) == named

    async def test_an_overlong_idempotency_key_is_400(
        self, ingest: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
        response = await ingest.post(
            "/usage/events", headers=headers | {"idempotency-key": "k" * 256}, json=[event()]
        )
        assert response.status_code == 400
        assert response.json()["type"] == "urn:stellara:problem:bad-idempotency-key"
