"""Partition upkeep: raw-event partitions made ahead, and dropped once past the dedup window."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx
from fastapi import FastAPI

from stellara_kit.db import asyncpg_dsn
from stellara_kit.testing import TestDatabase
from usage_svc.maintenance import PartitionKeeper
from usage_svc.settings import Settings

from .conftest import RunningService
from .helpers import Tenants, produce_usage, record, usage_of, wait_for_events


async def partitions(database: TestDatabase, parent: str) -> set[str]:
    conn = await asyncpg.connect(asyncpg_dsn(database.owner_url))
    try:
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = $1::regclass",
            parent,
        )
    finally:
        await conn.close()
    return {row["relname"] for row in rows}


def raw_partition(day: date) -> str:
    return f"raw_events_p{day:%Y%m%d}"


class TestPartitions:
    async def test_partitions_are_made_ahead_of_time(self, service: RunningService) -> None:
        keeper: PartitionKeeper = service.app.state.partitions
        today = datetime.now(UTC).date()

        assert await keeper.maintain(today) == []
        ahead = {raw_partition(today + timedelta(days=n)) for n in range(3)}
        assert ahead <= await partitions(service.database, "raw_events")

    async def test_only_days_past_the_window_are_dropped_and_their_usage_still_counts(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant()).tenant_id
        now = datetime.now(UTC)
        old, recent = now - timedelta(days=30), now - timedelta(minutes=5)
        await produce_usage(
            service.settings,
            [
                record(tenant, "api_calls", 7, occurred_at=old),
                record(tenant, "api_calls", 3, occurred_at=recent),
            ],
        )
        start = old.date().isoformat()
        await wait_for_events(service.http, service.settings, tenant, "api_calls", 2, start=start)

        # ten days on, the 30-day-old partition is past the 35-day window; today's is not
        keeper: PartitionKeeper = service.app.state.partitions
        dropped = await keeper.maintain(now.date() + timedelta(days=10))
        assert raw_partition(old.date()) in dropped
        left = await partitions(service.database, "raw_events")
        assert raw_partition(old.date()) not in left
        assert raw_partition(recent.date()) in left
        # queries answer from the aggregates, which retention leaves alone
        usage = await usage_of(service.http, service.settings, tenant, start=start)
        assert (usage["api_calls"]["value"], usage["api_calls"]["events"]) == (10, 2)


class TestLedgerRetention:
    async def test_ledger_epochs_go_once_every_id_in_them_is_past_the_window(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        settings: Settings,
        tenants: Tenants,
        test_database: TestDatabase,
    ) -> None:
        tenant = tenants.starter.tenant_id
        await produce_usage(settings, [record(tenant, "api_calls", 1)])
        await wait_for_events(client, settings, tenant, "api_calls", 1)
        epochs = await partitions(test_database, "usage_dedup")
        assert epochs

        keeper: PartitionKeeper = app.state.partitions
        later = datetime.now(UTC).date() + timedelta(days=settings.dedup_window_days + 15)
        dropped = await keeper.maintain(later)
        assert epochs <= set(dropped)
        assert epochs.isdisjoint(await partitions(test_database, "usage_dedup"))
        assert (await usage_of(client, settings, tenant))["api_calls"]["value"] == 1
