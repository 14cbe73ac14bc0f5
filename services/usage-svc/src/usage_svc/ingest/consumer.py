"""The usage ingester: a batch consumer of ``usage.recorded`` (the service's hot path).

Two stages run side by side so that decoding the next batch (CPU in this
process) overlaps writing the current one (CPU in PostgreSQL):

- the reader takes what Kafka has buffered (``getmany``, up to
  ``batch_target_records``), decodes and classifies it, and sends bad records
  to ``usage.recorded.dlq`` with the reason in ``x-dlq-reason``;
- the writer folds the good rows in one transaction (see ``repository``),
  waits for the dead letters' acknowledgements, and only then commits the
  offsets.

A batch PostgreSQL refuses for its data (a value out of range, a constraint) is
split in halves, each folded in a transaction of its own, down to the records
refused on their own: those are dead-lettered (``database_rejected``, with the
database's error) and the rest is counted, so that one record never stops a
partition. Any other failure (a lost connection, a restart, a serialization
failure) restarts the ingester, which reads the batch again.

Exactness never depends on the offset commit: a batch replayed after a crash
(before or after the database commit) finds its ids in the dedup ledger and
changes nothing. On a rebalance the revoked partitions' in-flight batches are
finished and committed before the partitions are handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from typing import Any
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError
from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts import topics
from stellara_contracts.topics import dlq_topic
from stellara_kit.consumer import dlq_headers
from stellara_kit.runtime import ServiceRuntime
from stellara_kit.tenant_directory import TenantDirectory
from usage_svc.ingest import quotas
from usage_svc.ingest import repository as repo
from usage_svc.ingest.classify import (
    DATABASE_REJECTED,
    REASONS,
    ROW_EVENT,
    ROW_METRIC,
    ROW_OCCURRED_AT,
    ROW_TENANT,
    UNKNOWN_METRIC,
    UNKNOWN_TENANT,
    Rejection,
    StagedFields,
    StagedRow,
    UsageClassifier,
)
from usage_svc.ingest.decoding import MalformedRecord, ParsedUsage, UsageRecordParser
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.plans import month_of
from usage_svc.settings import Settings

log = logging.getLogger(__name__)

Hook = Callable[["PreparedBatch"], Awaitable[None]]

#: records decoded between two turns of the event loop
YIELD_EVERY = 500
#: longest wait for more records while the writer is busy (how late it may find a batch)
GATHER_WAIT_MS = 10
#: transactions tried for one batch when other writers keep recording its events first
FOLD_ATTEMPTS = 3

#: Where a staged row came from, to dead-letter it as it was read: (topic, partition,
#: offset, key, value, headers). A plain tuple of atomic values, which the garbage
#: collector stops tracking (a ConsumerRecord would stay tracked, see StagedRow).
RecordSource = tuple[str, int, int, bytes | None, bytes | None, Sequence[tuple[str, bytes]]]


def _source_of(record: ConsumerRecord[bytes, bytes]) -> RecordSource:
    # aiokafka hands headers over as a tuple already
    return (record.topic, record.partition, record.offset, record.key, record.value, record.headers)


@dataclass
class IngestFaults:
    """Failure injection for tests: raise from a hook to crash the ingester there."""

    before_db_commit: Hook | None = None
    after_db_commit: Hook | None = None


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


@dataclass
class IngestStats:
    """Running figures of this process's ingester (for benchmarks and operators)."""

    records_committed: int = 0
    events_accepted: int = 0
    batches_committed: int = 0
    first_fetch_at: float | None = None  # time.perf_counter() of the first fetched batch
    last_commit_at: float | None = None
    # where the time goes (seconds, summed over batches)
    prepare_seconds: float = 0.0  # decoding and classifying (this process's CPU)
    store_seconds: float = 0.0  # the database transaction folding a batch
    commit_seconds: float = 0.0  # dead letters acknowledged and offsets committed


class IngestMetrics:
    def __init__(self, runtime: ServiceRuntime) -> None:
        registry = runtime.registry
        self.events = Counter(
            "stellara_usage_events_total",
            "Usage records consumed, by outcome (accepted, duplicate, dead_lettered, ignored)",
            ["outcome"],
            registry=registry,
        )
        self.batches = Histogram(
            "stellara_usage_batch_seconds",
            "Time from fetching a batch to committing its offsets",
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_size = Histogram(
            "stellara_usage_batch_records",
            "Records per ingested batch",
            registry=registry,
            buckets=(1, 10, 100, 1000, 5000, 10_000, 20_000, 50_000, 100_000),
        )
        self.alerts = Counter(
            "stellara_usage_alerts_total",
            "Quota alerts raised, by threshold",
            ["threshold"],
            registry=registry,
        )
        self.dead_lettered = runtime.consumer_metrics.dead_lettered
        for reason in REASONS:  # every reason listed from the start, at 0
            self.dead_lettered.labels(topic=topics.USAGE_RECORDED, reason=reason)


class UsageIngester:
    def __init__(
        self,
        *,
        runtime: ServiceRuntime,
        settings: Settings,
        directory: TenantDirectory,
        meters: MeterCatalogue,
        faults: IngestFaults | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = settings
        self.directory = directory
        self.meters = meters
        self.faults = faults or IngestFaults()
        self.topic = settings.topic(topics.USAGE_RECORDED)
        self.metrics = IngestMetrics(runtime)
        self.parser = UsageRecordParser()
        self.classifier = UsageClassifier(
            directory=directory,
            meters=meters,
            plans=settings.plans,
            dedup_window=timedelta(days=settings.dedup_window_days),
            future_skew=timedelta(seconds=settings.future_skew_seconds),
            allow_unknown_metrics=settings.allow_unknown_metrics,
        )
        self.fired: set[quotas.ThresholdKey] = set()
        self.stats = IngestStats()
        self._raw_days: set[date] = set()
        self._epoch: tuple[date, date, date] | None = None  # (for day, epoch start, probe from)
        self._given_up: dict[UUID, float] = {}
        self._meters_checked_at = 0.0
        self._inflight = 0
        self._writer_busy = False
        self._idle = asyncio.Event()
        self._idle.set()

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Consume for ever (a runtime background task; restarted if it fails)."""
        await self.directory.ready.wait()
        await self.meters.load()
        settings = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.ingest_group_id,
            client_id=f"{settings.service_name}-ingest",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.ingest_session_timeout_ms,
            heartbeat_interval_ms=max(settings.ingest_session_timeout_ms // 10, 100),
            max_poll_records=settings.batch_max_records,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_wait_ms=100,
        )
        consumer.subscribe([self.topic], listener=_FinishBeforeRevoke(self))
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=f"{settings.service_name}-dlq",
            enable_idempotence=True,
            linger_ms=5,
        )
        await producer.start()
        # What start-up built (modules, routes, the tenant directory) lives for ever. Out
        # of the collector's generations, the full collections that a stream of batches
        # sets off scan only what the batches left, not the whole heap every time.
        gc.collect()
        gc.freeze()
        try:
            await consumer.start()
            queue: asyncio.Queue[PreparedBatch] = asyncio.Queue(maxsize=1)
            await _side_by_side(
                self._read(consumer, producer, queue), self._write(consumer, producer, queue)
            )
        finally:
            gc.unfreeze()
            self._writer_busy = False
            self._inflight = 0
            self._idle.set()
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()

    async def finish_in_flight(self) -> None:
        """Wait until every fetched batch is stored and committed (before a rebalance)."""
        await self._idle.wait()

    # ------------------------------------------------------------------ reader
    async def _read(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        queue: asyncio.Queue[PreparedBatch],
    ) -> None:
        settings = self.settings
        while True:
            await self.meters.refresh_if_stale()
            fetched = await consumer.getmany(
                timeout_ms=settings.batch_max_wait_ms, max_records=settings.batch_max_records
            )
            if not fetched:
                continue
            self._inflight += 1
            self._idle.clear()
            try:
                batch = await self._prepare(consumer, producer, fetched)
                await queue.put(batch)
            except BaseException:
                self._batch_done()
                raise

    async def _prepare(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
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
        waiting: list[tuple[ConsumerRecord[bytes, bytes], ParsedUsage]] = []
        busy = await self._decode(fetched, producer, batch, seen, waiting)
        target = self.settings.batch_target_records
        # Keep adding records while the writer is busy; once it waits for work, hand the
        # batch over. The batch then holds what arrived during the previous transaction:
        # small (fresh aggregates) when the load is light, big (fewer rows per event to
        # fold, fewer transactions) under a backlog, and never queued behind another.
        while batch.records < target and self._writer_busy:
            fetched = await consumer.getmany(
                timeout_ms=GATHER_WAIT_MS, max_records=self.settings.batch_max_records
            )
            if fetched:
                busy += await self._decode(fetched, producer, batch, seen, waiting)
        if waiting:
            await self._wait_for_tenants(
                {
                    event.tenant_id
                    for _, event in waiting
                    if self.directory.get(event.tenant_id) is None
                }
            )
            resumed = time.perf_counter()
            for record, event in waiting:
                outcome = self.classifier.classify(event, batch.now)
                if isinstance(outcome, Rejection):
                    await self._dead_letter(producer, batch, record, outcome.reason, outcome.error)
                    continue
                key = (outcome[ROW_TENANT], outcome[ROW_EVENT])
                if key in seen:
                    batch.duplicates_in_batch += 1
                    continue
                seen.add(key)
                batch.staged.append(outcome)
                batch.sources.append(_source_of(record))
            busy += time.perf_counter() - resumed
        self.stats.prepare_seconds += busy
        return batch

    async def _decode(
        self,
        fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        producer: AIOKafkaProducer,
        batch: PreparedBatch,
        seen: set[tuple[str, str]],
        waiting: list[tuple[ConsumerRecord[bytes, bytes], ParsedUsage]],
    ) -> float:
        """Add one fetch's records to ``batch`` (and empty ``fetched``); returns the time busy."""
        now = batch.now
        parse = self.parser.parse
        classify = self.classifier.classify
        rows = batch.staged
        sources = batch.sources
        busy = 0.0
        resumed = time.perf_counter()
        handled = 0
        for tp, records in fetched.items():
            batch.offsets[tp] = records[-1].offset + 1
            batch.records += len(records)
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
                    await self._dead_letter(producer, batch, record, exc.reason, str(exc))
                    continue
                if event is None:  # another system's event type: not ours to judge
                    self.metrics.events.labels("ignored").inc()
                    continue
                outcome = classify(event, now)
                if isinstance(outcome, Rejection):
                    if outcome.reason == UNKNOWN_TENANT and self._may_wait_for(event.tenant_id):
                        waiting.append((record, event))
                    elif outcome.reason == UNKNOWN_METRIC and await self._meters_reloaded():
                        waiting.append((record, event))  # a meter added on another replica?
                    else:
                        await self._dead_letter(
                            producer, batch, record, outcome.reason, outcome.error
                        )
                    continue
                key = (outcome[ROW_TENANT], outcome[ROW_EVENT])
                if key in seen:
                    batch.duplicates_in_batch += 1
                    continue
                seen.add(key)
                rows.append(outcome)
                # as _source_of, inline: once per accepted record
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
        fetched.clear()
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

    async def _dead_letter(
        self,
        producer: AIOKafkaProducer,
        batch: PreparedBatch,
        record: ConsumerRecord[bytes, bytes],
        reason: str,
        error: str,
    ) -> None:
        await self._dead_letter_source(producer, batch, _source_of(record), reason, error)

    async def _dead_letter_source(
        self,
        producer: AIOKafkaProducer,
        batch: PreparedBatch,
        source: RecordSource,
        reason: str,
        error: str,
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
            consumer=self.settings.ingest_group_id,
        )
        future = await producer.send(
            dlq_topic(topic),
            value or b"",
            key=key,
            headers=[(k, v.encode()) for k, v in headers.items()],
        )
        batch.dead_letters.append(future)
        self.metrics.dead_lettered.labels(topic=topics.USAGE_RECORDED, reason=reason).inc()
        self.metrics.events.labels("dead_lettered").inc()

    # ------------------------------------------------------------------ writer
    async def _write(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        queue: asyncio.Queue[PreparedBatch],
    ) -> None:
        stats = self.stats
        while True:
            if queue.empty():
                self._writer_busy = False
            batch = await queue.get()
            self._writer_busy = True
            try:
                started = time.perf_counter()
                if batch.staged:
                    await self._store(batch, producer)
                stored = time.perf_counter()
                if batch.dead_letters:
                    await asyncio.gather(*batch.dead_letters)
                if self.faults.after_db_commit is not None:
                    await self.faults.after_db_commit(batch)
                await self._commit(consumer, batch.offsets)
                committed_at = time.perf_counter()
                stats.store_seconds += stored - started
                stats.commit_seconds += committed_at - stored
                self.stats.records_committed += batch.records
                self.stats.batches_committed += 1
                self.stats.last_commit_at = committed_at
                self.metrics.batches.observe(committed_at - batch.fetched_at)
                self.metrics.batch_size.observe(batch.records)
            finally:
                self._batch_done()

    def _batch_done(self) -> None:
        self._inflight = max(0, self._inflight - 1)
        if self._inflight == 0:
            self._idle.set()

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        assigned = consumer.assignment()
        mine = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not mine:
            return
        try:
            await consumer.commit(mine)
        except (CommitFailedError, IllegalStateError) as exc:
            # the partitions moved on: their new owner replays the batch, which the
            # dedup ledger turns into a no-op
            log.info("offset commit skipped after a rebalance: %s", exc)

    async def _store(self, batch: PreparedBatch, producer: AIOKafkaProducer) -> None:
        rows = batch.staged
        await self._prepare_partitions(rows)
        refused = 0
        try:
            accepted = await self._fold(batch, rows)
        except Exception as exc:
            refusal = repo.data_refusal(exc)
            if refusal is None:
                raise  # not the data's fault: the ingester restarts and reads the batch again
            log.warning(
                "PostgreSQL refused a usage batch of %d rows (%s); splitting it to find "
                "the records it refuses",
                len(rows),
                refusal.sqlstate,
            )
            accepted, refused = await self._fold_apart(batch, producer, 0, len(rows), refusal)
        self.stats.events_accepted += accepted
        self.metrics.events.labels("accepted").inc(accepted)
        duplicates = len(rows) - accepted - refused + batch.duplicates_in_batch
        if duplicates:
            self.metrics.events.labels("duplicate").inc(duplicates)

    async def _fold_apart(
        self,
        batch: PreparedBatch,
        producer: AIOKafkaProducer,
        start: int,
        end: int,
        refusal: asyncpg.PostgresError,
    ) -> tuple[int, int]:
        """Fold ``batch.staged[start:end]``, which the database refused, in halves.

        Each half is its own transaction; a refused half is split again, down to
        single rows, which are dead-lettered with the database's error. Returns the
        events accepted and the rows refused. Every committed half is in the ledger,
        so a crash meanwhile replays the batch and counts nothing twice.
        """
        if end - start == 1:
            await self._dead_letter_source(
                producer,
                batch,
                batch.sources[start],
                DATABASE_REJECTED,
                repo.describe_refusal(refusal),
            )
            return 0, 1
        accepted = refused = 0
        middle = (start + end) // 2
        for first, last in ((start, middle), (middle, end)):
            try:
                accepted += await self._fold(batch, batch.staged[first:last])
            except Exception as exc:
                part_refusal = repo.data_refusal(exc)
                if part_refusal is None:
                    raise
                part = await self._fold_apart(batch, producer, first, last, part_refusal)
                accepted += part[0]
                refused += part[1]
        return accepted, refused

    async def _fold(self, batch: PreparedBatch, rows: list[StagedRow]) -> int:
        """Fold ``rows`` in one transaction (again while a replica races it); events accepted."""
        db = self.runtime.db
        assert db is not None
        assert self._epoch is not None
        _, epoch, probe_from = self._epoch
        new_metrics = set(map(itemgetter(ROW_METRIC), rows)) - self.meters.with_data
        attempt = 1
        while True:
            crossings: list[quotas.Crossing] = []
            fired: list[quotas.Crossing] = []
            try:
                async with db.system_transaction() as session:
                    conn = await asyncpg_connection(session)
                    result = await repo.fold_batch(conn, rows, epoch=epoch, probe_from=probe_from)
                    if new_metrics:
                        await repo.mark_meters_with_data(conn, new_metrics)
                    if result.periods:
                        crossings, fired = await self._raise_alerts(session, conn, result.periods)
                    if self.faults.before_db_commit is not None:
                        await self.faults.before_db_commit(batch)
                break
            except asyncpg.UniqueViolationError:
                # another replica recorded some of these events since the probe (both
                # held the batch across a rebalance): probe again in a new transaction
                if attempt == FOLD_ATTEMPTS:
                    raise
                attempt += 1
                log.info("usage batch raced another writer; folding it again")
        self.meters.with_data |= new_metrics
        # recorded now or earlier (by a previous run or another replica): no need to ask again
        self.fired.update(crossing.key for crossing in crossings)
        for crossing in fired:
            self.metrics.alerts.labels(str(crossing.row.threshold)).inc()
        if len(self.fired) > 200_000:
            self.fired.clear()
        return result.accepted

    async def _raise_alerts(
        self, session: AsyncSession, conn: asyncpg.Connection, periods: list[repo.PeriodTotals]
    ) -> tuple[list[quotas.Crossing], list[quotas.Crossing]]:
        """Record the crossings; returns them all and those that are new (alerted now)."""
        unique_periods = quotas.unique_meter_keys(periods, self.meters)
        counts = await repo.unique_counts(
            conn,
            ((p.tenant_id, p.metric, *_period_bounds(p.period_start)) for p in unique_periods),
        )
        crossings = quotas.find_crossings(
            periods,
            directory=self.directory,
            plans=self.settings.plans,
            meters=self.meters,
            thresholds=self.settings.alert_thresholds_percent,
            unique_counts=counts,
            already_fired=self.fired,
        )
        if not crossings:
            return [], []
        inserted = await repo.record_thresholds(conn, [c.row for c in crossings])
        fired = [c for c in crossings if c.key in inserted]
        outbox = self.runtime.outbox
        assert outbox is not None
        await outbox.add_all(
            session, [quotas.alert_event(c, source=self.settings.service_name) for c in fired]
        )
        return crossings, fired

    async def _prepare_partitions(self, rows: list[StagedRow]) -> None:
        """Raw-event partitions for the batch's days and the dedup epoch of today."""
        db = self.runtime.db
        assert db is not None
        today = datetime.now(UTC).date()
        stamps = list(map(itemgetter(ROW_OCCURRED_AT), rows))
        first = min(stamps).astimezone(UTC).date()
        last = max(stamps).astimezone(UTC).date()
        days = {first + timedelta(days=n) for n in range((last - first).days + 1)}
        missing = days - self._raw_days
        if missing or self._epoch is None or self._epoch[0] != today:
            async with db.system_transaction() as session:
                conn = await asyncpg_connection(session)
                if missing:
                    await repo.ensure_raw_partitions(conn, missing)
                if self._epoch is None or self._epoch[0] != today:
                    epoch = await repo.dedup_epoch(conn, today, self.settings.dedup_epoch_days)
                    window_start = today - timedelta(days=self.settings.dedup_window_days + 1)
                    probe_from = await repo.oldest_live_epoch(conn, window_start, epoch)
                    self._epoch = (today, epoch, probe_from)
            self._raw_days |= missing


async def _side_by_side(*stages: Coroutine[Any, Any, None]) -> None:
    """Run the stages until one fails; then stop the others and raise its error.

    Not a TaskGroup: on Python 3.11 a TaskGroup whose child fails while the parent
    waits in it leaves a cancellation request on the parent task, so the runtime
    took the failure for a shutdown and never restarted the ingester.
    """
    tasks = [asyncio.create_task(stage) for stage in stages]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


def _period_bounds(period_start: date) -> tuple[datetime, datetime]:
    period = month_of(period_start)
    return period.start_at, period.end_at


async def asyncpg_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session (inside its open transaction)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, asyncpg.Connection)
    return driver


class _FinishBeforeRevoke(ConsumerRebalanceListener):
    """Lets in-flight batches of revoked partitions commit before they are handed over."""

    def __init__(self, ingester: UsageIngester) -> None:
        self.ingester = ingester

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked:
            try:
                await asyncio.wait_for(self.ingester.finish_in_flight(), timeout=30)
            except TimeoutError:
                log.warning("in-flight usage batch did not finish before the rebalance")

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("usage ingester assigned %s", sorted(tp.partition for tp in assigned))
