"""Building a batch: the one place where a record's fate is decided.

Each record is parsed and classified, then

- dead-lettered (to ``usage.recorded.dlq``, as it was read, with the reason in
  ``x-dlq-reason``) when it is not a valid event or the classifier refuses it;
- skipped (counted ``ignored``) when its type belongs to another system;
- set aside for a moment when its tenant or metric is unknown but may arrive
  soon (a tenant created just now, a meter added on another replica), and
  judged again, once, when the batch is complete;
- counted as a duplicate when the batch already holds its (tenant, event id);
- staged otherwise: a plain tuple in the staging table's layout
  (``repository.StagedRow``), with where it came from, for the store.

A batch is what Kafka has buffered, and more while the writer is busy with the
previous one, up to ``batch_target_records``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition

from stellara_contracts import topics
from stellara_contracts.topics import dlq_topic
from stellara_kit.consumer import dlq_headers
from stellara_kit.tenant_directory import TenantDirectory
from usage_svc.ingest.classify import UNKNOWN_METRIC, UNKNOWN_TENANT, Rejection, UsageClassifier
from usage_svc.ingest.decoding import MalformedRecord, ParsedUsage, UsageRecordParser
from usage_svc.ingest.metrics import IngestMetrics, IngestStats
from usage_svc.ingest.repository import ROW_EVENT, ROW_TENANT, StagedFields, StagedRow
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.settings import Settings

#: records decoded between two turns of the event loop
YIELD_EVERY = 500

Fetched = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]

#: Where a staged row came from, to dead-letter it as it was read: (topic, partition,
#: offset, key, value, headers). A plain tuple of atomic values, which the garbage
#: collector stops tracking (a ConsumerRecord would stay tracked, see StagedRow).
RecordSource = tuple[str, int, int, bytes | None, bytes | None, Sequence[tuple[str, bytes]]]


def source_of(record: ConsumerRecord[bytes, bytes]) -> RecordSource:
    # aiokafka hands headers over as a tuple already
    return (record.topic, record.partition, record.offset, record.key, record.value, record.headers)


@dataclass
class PreparedBatch:
    staged: list[StagedRow]  # plain tuples, see StagedRow
    offsets: dict[TopicPartition, int]
    now: datetime
    sources: list[RecordSource] = field(default_factory=list)  # one per staged row
    dead_letters: list[asyncio.Future[Any]] = field(default_factory=list)
    records: int = 0
    duplicates_in_batch: int = 0
    fetched_at: float = 0.0

    @property
    def rows(self) -> list[StagedFields]:
        """The staged rows with named, typed fields (for fault hooks and tools)."""
        return [StagedFields.of(row) for row in self.staged]


Hook = Callable[[PreparedBatch], Awaitable[None]]


@dataclass
class IngestFaults:
    """Failure injection for tests: raise from a hook to crash the ingester there."""

    before_db_commit: Hook | None = None
    after_db_commit: Hook | None = None


class DeadLetters:
    """Sends records to the dead-letter topic; the batch keeps the acknowledgements,
    which the writer awaits before it commits the batch's offsets."""

    def __init__(
        self, producer: AIOKafkaProducer, *, consumer_group: str, metrics: IngestMetrics
    ) -> None:
        self.producer = producer
        self.consumer_group = consumer_group
        self.metrics = metrics

    async def send(
        self,
        batch: PreparedBatch,
        record: ConsumerRecord[bytes, bytes],
        reason: str,
        error: str,
    ) -> None:
        await self.send_source(batch, source_of(record), reason, error)

    async def send_source(
        self, batch: PreparedBatch, source: RecordSource, reason: str, error: str
    ) -> None:
        topic, partition, offset, key, value, record_headers = source
        headers = dlq_headers(
            record_headers,
            error=error,
            reason=reason,
            topic=topic,
            partition=partition,
            offset=offset,
            attempts=0,
            consumer=self.consumer_group,
        )
        future = await self.producer.send(
            dlq_topic(topic),
            value or b"",
            key=key,
            headers=[(k, v.encode()) for k, v in headers.items()],
        )
        batch.dead_letters.append(future)
        self.metrics.dead_lettered.labels(topic=topics.USAGE_RECORDED, reason=reason).inc()
        self.metrics.events.labels("dead_lettered").inc()


#: records set aside until the batch is complete (their tenant or metric may arrive)
Waiting = list[tuple[ConsumerRecord[bytes, bytes], ParsedUsage]]


class BatchBuilder:
    """Turns fetched records into a :class:`PreparedBatch` (lives as long as the ingester)."""

    def __init__(
        self,
        *,
        settings: Settings,
        directory: TenantDirectory,
        meters: MeterCatalogue,
        metrics: IngestMetrics,
        stats: IngestStats,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.meters = meters
        self.metrics = metrics
        self.stats = stats
        self.parser = UsageRecordParser()
        self.classifier = UsageClassifier(
            directory=directory,
            meters=meters,
            plans=settings.plans,
            dedup_window=timedelta(days=settings.dedup_window_days),
            future_skew=timedelta(seconds=settings.future_skew_seconds),
            allow_unknown_metrics=settings.allow_unknown_metrics,
        )
        self._given_up: dict[UUID, float] = {}
        self._meters_checked_at = 0.0

    async def build(
        self,
        fetched: Fetched,
        *,
        fetch_more: Callable[[], Awaitable[Fetched]],
        writer_busy: Callable[[], bool],
        dead_letters: DeadLetters,
    ) -> PreparedBatch:
        """One batch: ``fetched`` and whatever else is buffered, up to ``batch_target_records``.

        Records are decoded a fetch at a time and dropped once decoded, so that a
        batch keeps only its staging rows: plain tuples the garbage collector
        soon stops tracking.
        """
        started = time.perf_counter()
        if self.stats.first_fetch_at is None:
            self.stats.first_fetch_at = started
        batch = PreparedBatch(staged=[], offsets={}, fetched_at=started, now=datetime.now(UTC))
        seen: set[tuple[str, str]] = set()
        waiting: Waiting = []
        busy = await self._add(fetched, batch, dead_letters, seen, waiting)
        target = self.settings.batch_target_records
        # Keep adding records while the writer is busy; once it waits for work, hand the
        # batch over. The batch then holds what arrived during the previous transaction:
        # small (fresh aggregates) when the load is light, big (fewer rows per event to
        # fold, fewer transactions) under a backlog, and never queued behind another.
        while batch.records < target and writer_busy():
            fetched = await fetch_more()
            if fetched:
                busy += await self._add(fetched, batch, dead_letters, seen, waiting)
        if waiting:
            await self._wait_for_tenants(
                {
                    event.tenant_id
                    for _, event in waiting
                    if self.directory.get(event.tenant_id) is None
                }
            )
            # judged again (read again from their bytes: parsing is pure), with no
            # more waiting: staged now, or dead-lettered
            busy += await self._sort(
                ([record for record, _ in waiting],), batch, dead_letters, seen, None
            )
        self.stats.prepare_seconds += busy
        return batch

    async def _add(
        self,
        fetched: Fetched,
        batch: PreparedBatch,
        dead_letters: DeadLetters,
        seen: set[tuple[str, str]],
        waiting: Waiting,
    ) -> float:
        """Add one fetch's records to ``batch`` (and empty ``fetched``); returns the time busy."""
        for tp, records in fetched.items():
            batch.offsets[tp] = records[-1].offset + 1
            batch.records += len(records)
        busy = await self._sort(fetched.values(), batch, dead_letters, seen, waiting)
        fetched.clear()
        return busy

    async def _sort(
        self,
        fetches: Iterable[list[ConsumerRecord[bytes, bytes]]],
        batch: PreparedBatch,
        dead_letters: DeadLetters,
        seen: set[tuple[str, str]],
        waiting: Waiting | None,
    ) -> float:
        """Decide each record's fate (see the module's docstring); returns the time busy.

        ``waiting`` takes the records that may be judged again later; None once
        they are judged for good.
        """
        now = batch.now
        parse = self.parser.parse
        classify = self.classifier.classify
        dead_letter = dead_letters.send
        rows = batch.staged
        sources = batch.sources
        busy = 0.0
        resumed = time.perf_counter()
        handled = 0
        for records in fetches:
            for record in records:
                handled += 1
                if handled % YIELD_EVERY == 0:
                    # let the writer move on to its next statement meanwhile: a batch
                    # decoded in one go would keep the database waiting for it
                    busy += time.perf_counter() - resumed
                    await asyncio.sleep(0)
                    resumed = time.perf_counter()
                try:
                    event = parse(record.value)
                except MalformedRecord as exc:
                    await dead_letter(batch, record, exc.reason, str(exc))
                    continue
                if event is None:  # another system's event type: not ours to judge
                    self.metrics.events.labels("ignored").inc()
                    continue
                outcome = classify(event, now)
                if isinstance(outcome, Rejection):
                    if waiting is not None and (
                        (outcome.reason == UNKNOWN_TENANT and self._may_wait_for(event.tenant_id))
                        # a meter added on another replica?
                        or (outcome.reason == UNKNOWN_METRIC and await self._meters_reloaded())
                    ):
                        waiting.append((record, event))
                    else:
                        await dead_letter(batch, record, outcome.reason, outcome.error)
                    continue
                key = (outcome[ROW_TENANT], outcome[ROW_EVENT])
                if key in seen:
                    batch.duplicates_in_batch += 1
                    continue
                seen.add(key)
                rows.append(outcome)
                # as source_of, inline: once per accepted record
                sources.append(
                    (
                        record.topic,
                        record.partition,
                        record.offset,
                        record.key,
                        record.value,
                        record.headers,
                    )
                )
        return busy + time.perf_counter() - resumed

    async def _meters_reloaded(self) -> bool:
        """Reload the meter catalogue (at most once a second) when a metric is unknown."""
        if self._meters_checked_at and time.monotonic() - self._meters_checked_at < 1.0:
            return False
        self._meters_checked_at = time.monotonic()
        return await self.meters.refresh_if_stale(min_age=1.0)

    def _may_wait_for(self, tenant_id: UUID) -> bool:
        given_up = self._given_up.get(tenant_id)
        return self.settings.unknown_tenant_grace_seconds > 0 and (
            given_up is None or time.monotonic() - given_up > 300
        )

    async def _wait_for_tenants(self, tenant_ids: set[UUID]) -> None:
        """Give ``tenant.state`` a moment to catch up with tenants created just now."""
        deadline = time.monotonic() + self.settings.unknown_tenant_grace_seconds
        missing = {t for t in tenant_ids if self.directory.get(t) is None}
        while missing and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            missing = {t for t in missing if self.directory.get(t) is None}
        now = time.monotonic()
        for tenant_id in missing:
            self._given_up[tenant_id] = now
        if len(self._given_up) > 10_000:
            self._given_up = {t: at for t, at in self._given_up.items() if now - at < 300}
