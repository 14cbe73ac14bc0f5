"""Storing a batch: its transactions, the quota check inside them, and storage upkeep.

A batch is folded in one transaction (see ``repository.fold_batch``), with the
quota alerts its period totals raise. A batch PostgreSQL refuses for its data (a
value out of range, a constraint) is split in halves, each folded in a
transaction of its own, down to the records refused on their own: those are
dead-lettered (``database_rejected``, with the database's error) and the rest is
counted, so that one record never stops a partition. Any other failure (a lost
connection, a restart, a serialization failure) propagates: the ingester
restarts and reads the batch again.

Before folding, the raw-event partitions of the batch's days and the dedup
epoch of today are made to exist (once per day and process).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter

import asyncpg

from stellara_kit.db import Database, asyncpg_connection
from usage_svc.ingest import repository as repo
from usage_svc.ingest.batch import DeadLetters, IngestFaults, PreparedBatch
from usage_svc.ingest.classify import DATABASE_REJECTED
from usage_svc.ingest.metrics import IngestMetrics, IngestStats
from usage_svc.ingest.quotas import NO_ALERTS, QuotaAlerts
from usage_svc.ingest.repository import ROW_METRIC, ROW_OCCURRED_AT, StagedRow
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.settings import Settings

log = logging.getLogger(__name__)

#: transactions tried for one batch when other writers keep recording its events first
FOLD_ATTEMPTS = 3


class BatchStore:
    """Folds prepared batches into the database (lives as long as the ingester)."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        meters: MeterCatalogue,
        alerts: QuotaAlerts,
        faults: IngestFaults,
        metrics: IngestMetrics,
        stats: IngestStats,
    ) -> None:
        self.db = db
        self.settings = settings
        self.meters = meters
        self.alerts = alerts
        self.faults = faults
        self.metrics = metrics
        self.stats = stats
        self._raw_days: set[date] = set()
        self._epoch: tuple[date, date, date] | None = None  # (for day, epoch start, probe from)

    async def store(self, batch: PreparedBatch, dead_letters: DeadLetters) -> None:
        """Fold the batch's staged rows; dead-letter those the database refuses."""
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
            accepted, refused = await self._fold_apart(batch, dead_letters, 0, len(rows), refusal)
        self.stats.events_accepted += accepted
        self.metrics.events.labels("accepted").inc(accepted)
        duplicates = len(rows) - accepted - refused + batch.duplicates_in_batch
        if duplicates:
            self.metrics.events.labels("duplicate").inc(duplicates)

    async def _fold_apart(
        self,
        batch: PreparedBatch,
        dead_letters: DeadLetters,
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
            await dead_letters.send_source(
                batch, batch.sources[start], DATABASE_REJECTED, repo.describe_refusal(refusal)
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
                part = await self._fold_apart(batch, dead_letters, first, last, part_refusal)
                accepted += part[0]
                refused += part[1]
        return accepted, refused

    async def _fold(self, batch: PreparedBatch, rows: list[StagedRow]) -> int:
        """Fold ``rows`` in one transaction (again while a replica races it); events accepted."""
        assert self._epoch is not None
        _, epoch, probe_from = self._epoch
        new_metrics = set(map(itemgetter(ROW_METRIC), rows)) - self.meters.with_data
        attempt = 1
        while True:
            raised = NO_ALERTS
            try:
                async with self.db.system_transaction() as session:
                    conn = await asyncpg_connection(session)
                    result = await repo.fold_batch(conn, rows, epoch=epoch, probe_from=probe_from)
                    if new_metrics:
                        await repo.mark_meters_with_data(conn, new_metrics)
                    if result.periods:
                        raised = await self.alerts.raise_alerts(session, conn, result.periods)
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
        self.alerts.committed(raised)
        return result.accepted

    async def _prepare_partitions(self, rows: list[StagedRow]) -> None:
        """Raw-event partitions for the batch's days and the dedup epoch of today."""
        today = datetime.now(UTC).date()
        stamps = list(map(itemgetter(ROW_OCCURRED_AT), rows))
        first = min(stamps).astimezone(UTC).date()
        last = max(stamps).astimezone(UTC).date()
        days = {first + timedelta(days=n) for n in range((last - first).days + 1)}
        missing = days - self._raw_days
        if missing or self._epoch is None or self._epoch[0] != today:
            async with self.db.system_transaction() as session:
                conn = await asyncpg_connection(session)
                if missing:
                    await repo.ensure_raw_partitions(conn, missing)
                if self._epoch is None or self._epoch[0] != today:
                    epoch = await repo.dedup_epoch(conn, today, self.settings.dedup_epoch_days)
                    window_start = today - timedelta(days=self.settings.dedup_window_days + 1)
                    probe_from = await repo.oldest_live_epoch(conn, window_start, epoch)
                    self._epoch = (today, epoch, probe_from)
            self._raw_days |= missing
