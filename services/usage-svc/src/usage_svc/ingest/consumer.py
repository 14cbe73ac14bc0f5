"""The usage ingester: a batch consumer of ``usage.recorded`` (the service's hot path).

Two stages run side by side so that decoding the next batch (CPU in this
process) overlaps writing the current one (CPU in PostgreSQL):

- the reader takes what Kafka has buffered (``getmany``, up to
  ``batch_target_records``) and has it built into a batch (``batch``: decoded,
  classified, bad records sent to ``usage.recorded.dlq``);
- the writer has the good rows stored (``store``: one transaction, split when
  PostgreSQL refuses the data, quota alerts included), waits for the dead
  letters' acknowledgements, and only then commits the offsets.

Exactness never depends on the offset commit: a batch replayed after a crash
(before or after the database commit) finds its ids in the dedup ledger and
changes nothing. On a rebalance the revoked partitions' in-flight batches are
finished and committed before the partitions are handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import time
from collections.abc import Coroutine
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError

from stellara_contracts import topics
from stellara_kit.runtime import ServiceRuntime
from stellara_kit.tenant_directory import TenantDirectory
from usage_svc.ingest.batch import BatchBuilder, DeadLetters, IngestFaults, PreparedBatch
from usage_svc.ingest.metrics import IngestMetrics, IngestStats
from usage_svc.ingest.quotas import QuotaAlerts
from usage_svc.ingest.store import BatchStore
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.settings import Settings

log = logging.getLogger(__name__)

#: longest wait for more records while the writer is busy (how late it may find a batch)
GATHER_WAIT_MS = 10


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
        assert runtime.db is not None and runtime.sink is not None
        self.runtime = runtime
        self.settings = settings
        self.directory = directory
        self.meters = meters
        self.faults = faults or IngestFaults()
        self.topic = settings.topic(topics.USAGE_RECORDED)
        self.metrics = IngestMetrics(runtime)
        self.stats = IngestStats()
        self.builder = BatchBuilder(
            settings=settings,
            directory=directory,
            meters=meters,
            metrics=self.metrics,
            stats=self.stats,
        )
        self.store = BatchStore(
            db=runtime.db,
            settings=settings,
            meters=meters,
            alerts=QuotaAlerts(
                directory=directory,
                plans=settings.plans,
                meters=meters,
                thresholds=settings.alert_thresholds_percent,
                sink=runtime.sink,
                alerts=self.metrics.alerts,
            ),
            faults=self.faults,
            metrics=self.metrics,
            stats=self.stats,
        )
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
        dead_letters = DeadLetters(
            producer, consumer_group=settings.ingest_group_id, metrics=self.metrics
        )
        # What start-up built (modules, routes, the tenant directory) lives for ever. Out
        # of the collector's generations, the full collections that a stream of batches
        # sets off scan only what the batches left, not the whole heap every time.
        gc.collect()
        gc.freeze()
        try:
            await consumer.start()
            queue: asyncio.Queue[PreparedBatch] = asyncio.Queue(maxsize=1)
            await _side_by_side(
                self._read(consumer, dead_letters, queue),
                self._write(consumer, dead_letters, queue),
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
        dead_letters: DeadLetters,
        queue: asyncio.Queue[PreparedBatch],
    ) -> None:
        settings = self.settings
        fetch_more = functools.partial(
            consumer.getmany, timeout_ms=GATHER_WAIT_MS, max_records=settings.batch_max_records
        )
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
                batch = await self.builder.build(
                    fetched,
                    fetch_more=fetch_more,
                    writer_busy=self._is_writer_busy,
                    dead_letters=dead_letters,
                )
                await queue.put(batch)
            except BaseException:
                self._batch_done()
                raise

    def _is_writer_busy(self) -> bool:
        return self._writer_busy

    # ------------------------------------------------------------------ writer
    async def _write(
        self,
        consumer: AIOKafkaConsumer,
        dead_letters: DeadLetters,
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
                    await self.store.store(batch, dead_letters)
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
