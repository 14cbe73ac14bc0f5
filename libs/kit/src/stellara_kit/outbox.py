"""The transactional outbox and its relay.

A state change and the events it causes are written in one transaction:
``Outbox.add(session, event)`` inserts a row into ``outbox`` inside the
caller's transaction. Services hold an :class:`EventSink` (the runtime's
``sink``): ``await sink.publish(session, payload, ...)`` wraps payloads in
their envelope, with the service as ``source``, and adds them so. The relay publishes committed rows to Kafka with an
idempotent producer (``acks=all``), oldest first, and deletes them once Kafka
acknowledged them. So an event is published if and only if its transaction
committed — possibly twice after a crash, never lost. Every record follows
the CloudEvents Kafka binding in structured mode (``stellara_contracts.binding``):
the event's JSON as value, the tenant id as key, ``content-type:
application/cloudevents+json`` as header.

The relay wakes on ``LISTEN/NOTIFY`` (a statement trigger on ``outbox``)
rather than polling fast, and only one relay per database is active: it
holds a PostgreSQL advisory lock for as long as it runs; the others wait
for the lock, so replicas of a service can be added freely.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    LargeBinary,
    MetaData,
    Table,
    Text,
    func,
    insert,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts import CloudEvent, EventData, new_event, record_headers
from stellara_kit.db import asyncpg_dsn
from stellara_kit.locks import advisory_key
from stellara_kit.logs import traceparent_var

log = logging.getLogger(__name__)

OUTBOX_TABLE = "outbox"
NOTIFY_CHANNEL = "stellara_outbox"


def outbox_table(metadata: MetaData) -> Table:
    """Declare the ``outbox`` table on a service's metadata (so Alembic sees it)."""
    return Table(
        OUTBOX_TABLE,
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("event_id", UUID(as_uuid=True), nullable=False),
        Column("topic", Text, nullable=False),
        Column("key", LargeBinary, nullable=True),
        Column("payload", LargeBinary, nullable=False),
        Column("headers", JSONB, nullable=False, server_default="{}"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def outbox_trigger_statements(table: str = OUTBOX_TABLE) -> list[str]:
    """DDL of the NOTIFY trigger; migrations run it after creating the table."""
    return [
        f"""
        CREATE OR REPLACE FUNCTION {table}_notify() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
            RETURN NULL;
        END $$
        """,
        f"DROP TRIGGER IF EXISTS {table}_notify ON {table}",
        f"CREATE TRIGGER {table}_notify AFTER INSERT ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_notify()",
    ]


class Outbox:
    """Adds events to the outbox inside the caller's transaction."""

    def __init__(self, table: Table, *, topic_prefix: str = "") -> None:
        self.table = table
        self.topic_prefix = topic_prefix

    async def add(self, session: AsyncSession, event: CloudEvent, **headers: str) -> None:
        await self.add_all(session, [event], **headers)

    async def add_all(
        self, session: AsyncSession, events: Iterable[CloudEvent], **headers: str
    ) -> None:
        traceparent = traceparent_var.get()
        if traceparent is not None:
            # events caused by a traced request or event carry its trace on
            events = [
                e if e.traceparent else e.model_copy(update={"traceparent": traceparent})
                for e in events
            ]
        rows = [
            {
                "event_id": event.id,
                "topic": f"{self.topic_prefix}{event.topic}",
                "key": event.key,
                "payload": event.to_json(),
                "headers": headers,
            }
            for event in events
        ]
        if rows:
            await session.execute(insert(self.table), rows)


class EventSink:
    """How a service's events get into the outbox: wrapped in their envelope (``source`` =
    the service) and added to the caller's transaction, never published directly."""

    def __init__(self, outbox: Outbox, *, source: str) -> None:
        self.outbox = outbox
        self.source = source

    def envelope(self, payload: EventData, **envelope: Any) -> CloudEvent:
        """``payload`` in its envelope from this service (``id=`` to choose the event id)."""
        return new_event(payload, source=self.source, **envelope)

    async def add(self, session: AsyncSession, *events: CloudEvent) -> None:
        """Add events already in their envelope (see :meth:`envelope`)."""
        await self.outbox.add_all(session, events)

    async def publish(self, session: AsyncSession, *payloads: EventData) -> list[CloudEvent]:
        """Wrap each payload in a fresh envelope and add it; the events, in order."""
        events = [self.envelope(payload) for payload in payloads]
        await self.outbox.add_all(session, events)
        return events


def advisory_lock_key(name: str) -> int:
    """A stable 32-bit advisory-lock key for a relay name."""
    return advisory_key(f"stellara-outbox:{name}")


class OutboxRelay:
    """Publishes committed outbox rows to Kafka; one active relay per database."""

    def __init__(
        self,
        database_url: str,
        bootstrap_servers: str,
        *,
        name: str,
        table: str = OUTBOX_TABLE,
        batch_size: int = 500,
        idle_poll_seconds: float = 5.0,
        standby_poll_seconds: float = 1.0,
        producer_options: dict[str, Any] | None = None,
    ) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.bootstrap_servers = bootstrap_servers
        self.name = name
        self.table = table
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        self.standby_poll_seconds = standby_poll_seconds
        self.producer_options = producer_options or {}
        self.lock_key = advisory_lock_key(name)
        self.is_leader = False
        self.published = 0
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            # the loops also check _stopping, so a cancellation lost inside a wait ends them too
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, timeout=10)
            self._task = None
        self.is_leader = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        backoff = 0.5
        while not self._stopping:
            try:
                await self._session()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the relay must outlive broker or database blips
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("outbox relay %s failed, retrying: %s", self.name, self.last_error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                self.is_leader = False

    async def _session(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self.dsn)
        producer: AIOKafkaProducer | None = None
        try:
            await conn.add_listener(NOTIFY_CHANNEL, self._notified)
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
                if self._stopping:
                    return
                await self._sleep(self.standby_poll_seconds)
            if self._stopping:
                return
            self.is_leader = True
            log.info("outbox relay %s is active", self.name)
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                enable_idempotence=True,  # also forces acks="all"
                linger_ms=2,
                max_batch_size=512 * 1024,
                **self.producer_options,
            )
            await producer.start()
            while not self._stopping:
                self._wake.clear()
                published = await self._drain_once(conn, producer)
                if published == 0:
                    await self._sleep(self.idle_poll_seconds)
        finally:
            if producer is not None:
                await producer.stop()
            with contextlib.suppress(Exception):
                await conn.close()

    async def _drain_once(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        rows: Sequence[asyncpg.Record] = await conn.fetch(
            f"SELECT id, topic, key, payload, headers FROM {self.table} ORDER BY id LIMIT $1",
            self.batch_size,
        )
        if not rows:
            return 0
        futures = []
        for row in rows:
            extra = orjson.loads(row["headers"]) if row["headers"] else {}
            # the binding's headers (structured mode) first; a row's own never replace them
            headers = record_headers()
            named = {name for name, _ in headers}
            headers += [(k, str(v).encode()) for k, v in extra.items() if k not in named]
            futures.append(
                await producer.send(
                    row["topic"],
                    bytes(row["payload"]),
                    key=bytes(row["key"]) if row["key"] is not None else None,
                    headers=headers,
                )
            )
        await asyncio.gather(*futures)
        await conn.execute(
            f"DELETE FROM {self.table} WHERE id = ANY($1::bigint[])", [row["id"] for row in rows]
        )
        self.published += len(rows)
        return len(rows)

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
