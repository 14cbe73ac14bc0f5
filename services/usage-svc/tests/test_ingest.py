"""Ingestion from usage.recorded: exact totals under redelivery, crashes, disorder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
from fastapi import FastAPI

from stellara_kit.testing import running_app
from usage_svc.ingest.consumer import IngestFaults, PreparedBatch
from usage_svc.main import create_app
from usage_svc.settings import Settings
from usage_svc.testing import (
    Tenants,
    headers,
    metric_value,
    produce_usage,
    record,
    usage_of,
    wait_for_events,
    wait_ready,
)

from .conftest import RunningService

EVENTS = "stellara_usage_events_total"


def _hour_ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


class TestTotals:
    async def test_events_are_summed_per_metric(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        await produce_usage(
            service.settings,
            [record(tenant, "api_calls", 2) for _ in range(10)]
            + [record(tenant, "workflow_runs", 1) for _ in range(3)],
        )
        calls = await wait_for_events(service.http, service.settings, tenant, "api_calls", 10)
        runs = await wait_for_events(service.http, service.settings, tenant, "workflow_runs", 3)
        assert (calls["value"], runs["value"]) == (20, 3)

    async def test_tenants_are_counted_apart(self, service: RunningService) -> None:
        one = (await service.new_tenant()).tenant_id
        other = (await service.new_tenant()).tenant_id
        await produce_usage(
            service.settings,
            [record(one, "transactions", 5), record(other, "transactions", 7)],
        )
        mine = await wait_for_events(service.http, service.settings, one, "transactions", 1)
        theirs = await wait_for_events(service.http, service.settings, other, "transactions", 1)
        assert (mine["value"], theirs["value"]) == (5, 7)


class TestDuplicates:
    async def test_a_record_sent_again_counts_once(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        records = [record(tenant, "api_calls", 3) for _ in range(5)]
        before = await metric_value(service.http, EVENTS, outcome="duplicate")
        await produce_usage(service.settings, records)
        await wait_for_events(service.http, service.settings, tenant, "api_calls", 5)
        # the producer retries the whole lot, then a sentinel shows the retry was read
        await produce_usage(service.settings, [*records, record(tenant, "workflow_runs", 1)])
        await wait_for_events(service.http, service.settings, tenant, "workflow_runs", 1)

        usage = await usage_of(service.http, service.settings, tenant)
        assert (usage["api_calls"]["value"], usage["api_calls"]["events"]) == (15, 5)
        assert await metric_value(service.http, EVENTS, outcome="duplicate") == before + 5

    async def test_duplicates_inside_one_batch_count_once(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        same_id = uuid4()
        when = _hour_ago(1)
        copies = [record(tenant, "api_calls", 4, event_id=same_id, occurred_at=when)] * 4
        await produce_usage(service.settings, [*copies, record(tenant, "workflow_runs", 1)])
        await wait_for_events(service.http, service.settings, tenant, "workflow_runs", 1)

        usage = await usage_of(service.http, service.settings, tenant)
        assert (usage["api_calls"]["value"], usage["api_calls"]["events"]) == (4, 1)

    async def test_the_same_event_id_in_two_tenants_is_two_events(
        self, service: RunningService
    ) -> None:
        one = (await service.new_tenant()).tenant_id
        other = (await service.new_tenant()).tenant_id
        shared = uuid4()
        await produce_usage(
            service.settings,
            [
                record(one, "api_calls", 1, event_id=shared),
                record(other, "api_calls", 1, event_id=shared),
            ],
        )
        assert (await wait_for_events(service.http, service.settings, one, "api_calls", 1))[
            "value"
        ] == 1
        assert (await wait_for_events(service.http, service.settings, other, "api_calls", 1))[
            "value"
        ] == 1


class TestOutOfOrder:
    async def test_late_events_land_in_their_own_hour_and_day(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant()).tenant_id
        now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
        recent, days_ago = now - timedelta(hours=1), now - timedelta(days=3)
        # the newest first, then one three days older
        await produce_usage(
            service.settings,
            [
                record(tenant, "api_calls", 10, occurred_at=recent),
                record(tenant, "api_calls", 1, occurred_at=days_ago),
            ],
        )
        start = days_ago.date().isoformat()
        await wait_for_events(service.http, service.settings, tenant, "api_calls", 2, start=start)

        response = await service.http.get(
            f"/tenants/{tenant}/usage/daily",
            params={
                "from": start,
                "to": recent.date().isoformat(),
                "metric": "api_calls",
            },
            headers=headers(service.settings, tenant),
        )
        assert response.status_code == 200, response.text
        by_day = {row["date"]: row["value"] for row in response.json()["rows"]}
        assert by_day[days_ago.date().isoformat()] == 1
        assert by_day[recent.date().isoformat()] == 10
        assert sum(by_day.values()) == 11

    async def test_the_latest_value_is_the_newest_by_occurred_at_not_by_arrival(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant()).tenant_id
        admin = headers(service.settings)
        meter = {"key": "queue_depth", "aggregation": "LATEST", "unit": "jobs"}
        added = await service.http.post("/meters", json=meter, headers=admin)
        assert added.status_code in (200, 201), added.text
        # 7 is the newest reading; 100 and 3 are older ones arriving after it
        await produce_usage(
            service.settings,
            [
                record(tenant, "queue_depth", 7, occurred_at=_hour_ago(0.1)),
                record(tenant, "queue_depth", 100, occurred_at=_hour_ago(5)),
            ],
        )
        await wait_for_events(service.http, service.settings, tenant, "queue_depth", 2)
        await produce_usage(
            service.settings, [record(tenant, "queue_depth", 3, occurred_at=_hour_ago(2))]
        )
        latest = await wait_for_events(service.http, service.settings, tenant, "queue_depth", 3)
        assert latest["value"] == 7


# --------------------------------------------------------------------- crashes (own service)
class CrashOnce:
    """An ingester fault that raises the first time it is reached (the test's first batch:
    nothing else is on the topic)."""

    def __init__(self) -> None:
        self.crashed_batches: list[int] = []  # records in the batch that crashed

    async def __call__(self, batch: PreparedBatch) -> None:
        if not self.crashed_batches:
            self.crashed_batches.append(batch.records)
            raise RuntimeError("injected crash")


class TestCrashes:
    async def test_a_crash_between_the_database_and_the_offset_commit_counts_nothing_twice(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        tenants: Tenants,
        faults: IngestFaults,
    ) -> None:
        tenant = tenants.starter.tenant_id
        crash = CrashOnce()
        faults.after_db_commit = crash
        await produce_usage(settings, [record(tenant, "api_calls", 2) for _ in range(20)])

        await wait_for_events(client, settings, tenant, "api_calls", 20)
        # a later record on the same partition: once it counts, the crashed batch was replayed
        await produce_usage(settings, [record(tenant, "workflow_runs", 1)])
        await wait_for_events(client, settings, tenant, "workflow_runs", 1)

        usage = await usage_of(client, settings, tenant)
        assert (usage["api_calls"]["value"], usage["api_calls"]["events"]) == (40, 20)
        assert len(crash.crashed_batches) == 1
        # every row of the crashed batch came back and was recognised as already counted
        replayed = crash.crashed_batches[0]
        assert await metric_value(client, EVENTS, outcome="duplicate") == replayed

    async def test_a_crash_before_the_database_commit_loses_nothing(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        tenants: Tenants,
        faults: IngestFaults,
    ) -> None:
        tenant = tenants.starter.tenant_id
        crash = CrashOnce()
        faults.before_db_commit = crash
        await produce_usage(settings, [record(tenant, "api_calls", 2) for _ in range(20)])

        await wait_for_events(client, settings, tenant, "api_calls", 20)
        await produce_usage(settings, [record(tenant, "workflow_runs", 1)])
        await wait_for_events(client, settings, tenant, "workflow_runs", 1)

        usage = await usage_of(client, settings, tenant)
        assert (usage["api_calls"]["value"], usage["api_calls"]["events"]) == (40, 20)
        assert len(crash.crashed_batches) == 1
        # the rolled-back batch left nothing behind for its replay to find
        assert await metric_value(client, EVENTS, outcome="duplicate") == 0

    async def test_a_restarted_service_reading_the_topic_again_counts_nothing_twice(
        self, app: FastAPI, settings: Settings, tenants: Tenants
    ) -> None:
        tenant = tenants.free.tenant_id
        await produce_usage(settings, [record(tenant, "api_calls", 1) for _ in range(10)])
        async with running_app(app) as http:
            await wait_ready(http)
            await wait_for_events(http, settings, tenant, "api_calls", 10)

        # a new deployment whose consumer group lost its offsets reads everything again
        replay = settings.model_copy(update={"consumer_group": f"{settings.consumer_group}-new"})
        async with running_app(create_app(replay)) as http:
            await wait_ready(http)
            await produce_usage(settings, [record(tenant, "workflow_runs", 1)])
            await wait_for_events(http, settings, tenant, "workflow_runs", 1)
            usage = await usage_of(http, settings, tenant)
            assert (usage["api_calls"]["value"], usage["api_calls"]["events"]) == (10, 10)
            assert await metric_value(http, EVENTS, outcome="duplicate") == 10
