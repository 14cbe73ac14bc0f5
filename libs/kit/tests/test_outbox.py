"""The outbox and its relay against real PostgreSQL and Kafka."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select

from stellara_contracts import decode_event, new_event, topics
from stellara_contracts.events import UsageRecorded
from stellara_kit.logs import traceparent_var
from stellara_kit.outbox import EventSink, Outbox, OutboxRelay
from stellara_kit.testing import Infrastructure, consume, wait_for


def usage(tenant: UUID, n: int) -> Any:
    data = UsageRecorded(
        tenant_id=tenant, metric="api_calls", value=n, occurred_at=datetime.now(UTC)
    )
    return new_event(data, source="kit-test")


def relay_for(kit_db: Any, infra: Infrastructure, name: str = "kit-test") -> OutboxRelay:
    return OutboxRelay(
        kit_db.urls.runtime_url,
        infra.kafka_bootstrap,
        name=f"{name}-{kit_db.urls.name}",
        idle_poll_seconds=2.0,
        standby_poll_seconds=0.2,
    )


async def outbox_size(kit_db: Any) -> int:
    async with kit_db.database.system_transaction() as session:
        return int(
            (await session.execute(select(func.count()).select_from(kit_db.outbox))).scalar_one()
        )


async def published(infra: Infrastructure, topic: str, count: int | None = None) -> list[Any]:
    records = await consume(infra.kafka_bootstrap, topic, count=count, timeout=15, settle=1.0)
    return [decode_event(topics.USAGE_RECORDED, r.value) for r in records]


class TestOutbox:
    async def test_rolled_back_transaction_publishes_nothing(
        self, kit_db: Any, infrastructure: Infrastructure, topic_prefix: str
    ) -> None:
        outbox, tenant = Outbox(kit_db.outbox, topic_prefix=topic_prefix), uuid4()
        with pytest.raises(RuntimeError):
            async with kit_db.database.transaction(tenant) as session:
                await outbox.add(session, usage(tenant, 1))
                raise RuntimeError("business rule failed")
        marker = usage(tenant, 2)
        async with kit_db.database.transaction(tenant) as session:
            await outbox.add(session, marker)

        relay = relay_for(kit_db, infrastructure)
        await relay.start()
        try:
            events = await published(infrastructure, f"{topic_prefix}{topics.USAGE_RECORDED}")
        finally:
            await relay.stop()
        assert [e.id for e in events] == [marker.id]

    async def test_events_added_while_handling_a_traced_request_carry_its_trace(
        self, kit_db: Any, infrastructure: Infrastructure, topic_prefix: str
    ) -> None:
        outbox, tenant = Outbox(kit_db.outbox, topic_prefix=topic_prefix), uuid4()
        trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        token = traceparent_var.set(trace)
        try:
            async with kit_db.database.transaction(tenant) as session:
                await outbox.add(session, usage(tenant, 1))
        finally:
            traceparent_var.reset(token)
        async with kit_db.database.transaction(tenant) as session:
            await outbox.add(session, usage(tenant, 2))  # outside any trace

        relay = relay_for(kit_db, infrastructure)
        await relay.start()
        try:
            events = await published(infrastructure, f"{topic_prefix}{topics.USAGE_RECORDED}", 2)
        finally:
            await relay.stop()
        assert [(e.data.value, e.traceparent) for e in events] == [(1, trace), (2, None)]

    async def test_committed_events_are_published_once_in_order_per_tenant(
        self, kit_db: Any, infrastructure: Infrastructure, topic_prefix: str
    ) -> None:
        outbox = Outbox(kit_db.outbox, topic_prefix=topic_prefix)
        tenants = [uuid4() for _ in range(3)]
        sent: dict[UUID, list[UUID]] = defaultdict(list)
        for batch in range(10):
            for tenant in tenants:
                async with kit_db.database.transaction(tenant) as session:
                    events = [usage(tenant, batch * 10 + i) for i in range(3)]
                    await outbox.add_all(session, events)
                    sent[tenant] += [e.id for e in events]

        relay = relay_for(kit_db, infrastructure)
        await relay.start()
        try:
            records = await consume(
                infrastructure.kafka_bootstrap,
                f"{topic_prefix}{topics.USAGE_RECORDED}",
                count=90,
                timeout=20,
            )
            await wait_for(lambda: outbox_size(kit_db), until=lambda n: n == 0)
        finally:
            await relay.stop()
        seen: dict[UUID, list[UUID]] = defaultdict(list)
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            event = decode_event(topics.USAGE_RECORDED, record.value)
            assert record.key == str(event.tenantid).encode()
            # the CloudEvents Kafka binding, structured mode: the one header of every record
            assert list(record.headers) == [("content-type", b"application/cloudevents+json")]
            seen[event.tenantid].append(event.id)
        assert seen == sent

    async def test_events_committed_while_relay_was_down_are_published_after_restart(
        self, kit_db: Any, infrastructure: Infrastructure, topic_prefix: str
    ) -> None:
        outbox, tenant = Outbox(kit_db.outbox, topic_prefix=topic_prefix), uuid4()

        class RelayKilled(Exception):
            pass

        class CrashingRelay(OutboxRelay):
            async def _drain_once(self, conn: Any, producer: Any) -> int:
                await conn.fetch("SELECT id FROM outbox")  # read the rows, then die
                raise RelayKilled("relay killed before publishing")

        crashing = relay_for(kit_db, infrastructure)
        crashing.__class__ = CrashingRelay
        events = [usage(tenant, i) for i in range(5)]
        async with kit_db.database.transaction(tenant) as session:
            await outbox.add_all(session, events)
        with pytest.raises(RelayKilled):
            await crashing._session()
        assert await outbox_size(kit_db) == 5

        relay = relay_for(kit_db, infrastructure)
        await relay.start()
        try:
            got = await published(infrastructure, f"{topic_prefix}{topics.USAGE_RECORDED}", 5)
            await wait_for(lambda: outbox_size(kit_db), until=lambda n: n == 0)
        finally:
            await relay.stop()
        assert [e.id for e in got] == [e.id for e in events]

    async def test_two_relays_publish_everything_with_one_active(
        self, kit_db: Any, infrastructure: Infrastructure, topic_prefix: str
    ) -> None:
        outbox, tenant = Outbox(kit_db.outbox, topic_prefix=topic_prefix), uuid4()
        first, second = relay_for(kit_db, infrastructure), relay_for(kit_db, infrastructure)
        await first.start()
        await second.start()
        try:
            await wait_for(lambda: _leaders(first, second), until=lambda n: n == 1)
            events = [usage(tenant, i) for i in range(20)]
            for event in events[:10]:
                async with kit_db.database.transaction(tenant) as session:
                    await outbox.add(session, event)
            await wait_for(lambda: outbox_size(kit_db), until=lambda n: n == 0)
            assert await _leaders(first, second) == 1

            leader = first if first.is_leader else second
            standby = second if leader is first else first
            await leader.stop()  # the standby takes over
            for event in events[10:]:
                async with kit_db.database.transaction(tenant) as session:
                    await outbox.add(session, event)
            await wait_for(lambda: outbox_size(kit_db), until=lambda n: n == 0)
            assert standby.is_leader
            got = await published(infrastructure, f"{topic_prefix}{topics.USAGE_RECORDED}", 20)
        finally:
            await first.stop()
            await second.stop()
        assert [e.id for e in got] == [e.id for e in events]
        assert first.published + second.published == 20


async def _leaders(*relays: OutboxRelay) -> int:
    return sum(r.is_leader for r in relays)


class TestEventSink:
    async def test_payloads_are_added_in_their_envelope_from_the_service(self, kit_db: Any) -> None:
        sink, tenant = EventSink(Outbox(kit_db.outbox), source="kit-svc"), uuid4()
        payloads = [
            UsageRecorded(
                tenant_id=tenant, metric="api_calls", value=n, occurred_at=datetime.now(UTC)
            )
            for n in (1, 2)
        ]
        async with kit_db.database.transaction(tenant) as session:
            events = await sink.publish(session, *payloads)
        async with kit_db.database.system_transaction() as session:
            rows = (
                await session.execute(
                    select(kit_db.outbox.c.event_id, kit_db.outbox.c.payload).order_by(
                        kit_db.outbox.c.id
                    )
                )
            ).all()
        assert [row.event_id for row in rows] == [e.id for e in events]
        decoded = [decode_event(topics.USAGE_RECORDED, row.payload) for row in rows]
        assert [(e.source, e.data) for e in decoded] == [("kit-svc", p) for p in payloads]

    async def test_an_enveloped_event_keeps_the_id_it_was_given(self, kit_db: Any) -> None:
        sink, tenant, chosen = EventSink(Outbox(kit_db.outbox), source="kit-svc"), uuid4(), uuid4()
        data = UsageRecorded(
            tenant_id=tenant, metric="api_calls", value=1, occurred_at=datetime.now(UTC)
        )
        async with kit_db.database.transaction(tenant) as session:
            await sink.add(session, sink.envelope(data, id=chosen))
        async with kit_db.database.system_transaction() as session:
            ids = list((await session.execute(select(kit_db.outbox.c.event_id))).scalars())
        assert ids == [chosen]
