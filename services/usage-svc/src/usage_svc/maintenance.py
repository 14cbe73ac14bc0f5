"""Partition upkeep: raw-event partitions ahead of time, and retention past the dedup window.

Raw events are partitioned by UTC day of ``occurred_at``; the dedup ledger by
epochs of receive days. Events older than the window are refused at the door
(``too_old``), so a raw partition whose day ended more than the window ago
can only hold events nobody will count again, and is dropped whole; a ledger
epoch goes once every id in it was received more than the window (plus a
day) ago. The ingester creates missing partitions itself; this job keeps
them ahead so it rarely has to.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, timedelta

from stellara_kit.db import asyncpg_connection
from stellara_kit.runtime import ServiceRuntime
from usage_svc.ingest import repository as ingest_repo
from usage_svc.settings import Settings

log = logging.getLogger(__name__)


class PartitionKeeper:
    def __init__(self, *, runtime: ServiceRuntime, settings: Settings) -> None:
        self.runtime = runtime
        self.settings = settings

    async def run(self) -> None:
        """Keep partitions ahead and drop expired ones now and then (a background task)."""
        while True:
            try:
                dropped = await self.maintain(datetime.now(UTC).date())
                if dropped:
                    log.info("dropped expired partitions: %s", ", ".join(dropped))
            except Exception:
                log.exception("partition upkeep failed; trying again later")
            await asyncio.sleep(self.settings.retention_interval_seconds)

    async def maintain(self, today: date) -> list[str]:
        db = self.runtime.db
        assert db is not None
        window = timedelta(days=self.settings.dedup_window_days)
        ahead = [today + timedelta(days=n) for n in range(self.settings.partitions_ahead_days + 1)]
        async with db.system_transaction() as session:
            conn = await asyncpg_connection(session)
            await ingest_repo.ensure_raw_partitions(conn, ahead)
            await ingest_repo.dedup_epoch(conn, today, self.settings.dedup_epoch_days)
        async with db.system_transaction() as session:
            conn = await asyncpg_connection(session)
            return await ingest_repo.drop_expired_partitions(
                conn, raw_before=today - window, dedup_before=today - window - timedelta(days=1)
            )
