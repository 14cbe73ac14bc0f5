"""Quota alerts on usage.alerts: 80% and 100% of a plan limit, once per tenant, metric,
threshold and period — whatever the redelivery, crash or restart."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import httpx
from fastapi import FastAPI

from stellara_contracts import CloudEvent
from stellara_contracts.events import QuotaExceededEvent, UsageThresholdReachedEvent
from stellara_kit.testing import TestDatabase, running_app, wait_for
from usage_svc.ingest.batch import IngestFaults
from usage_svc.main import create_app
from usage_svc.plans import month_of
from usage_svc.settings import Settings

from .conftest import RunningService
from .helpers import (
    Tenants,
    alerts_of,
    outbox_drained,
    produce_usage,
    record,
    wait_for_events,
    wait_ready,
)
from .test_ingest import CrashOnce

GB = 1_000_000_000


async def settled_alerts(settings: Settings, owner_url: str, tenant: UUID) -> list[CloudEvent]:
    """Every alert about the tenant once the relay has published all it holds."""
    await outbox_drained(owner_url)
    return await alerts_of(settings, tenant)


async def wait_for_alerts(settings: Settings, tenant: UUID, count: int) -> None:
    async def alerts() -> list[CloudEvent]:
        return await alerts_of(settings, tenant)

    await wait_for(alerts, until=lambda found: len(found) >= count)


def summary(alerts: list[CloudEvent]) -> list[tuple[str, str, float]]:
    out = []
    for event in alerts:
        if isinstance(event, UsageThresholdReachedEvent):
            out.append(("threshold", event.data.metric, event.data.threshold_percent))
        elif isinstance(event, QuotaExceededEvent):
            out.append(("exceeded", event.data.metric, 100))
    return out


class TestThresholds:
    async def test_80_and_100_percent_are_each_announced_once(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant(plan="free")).tenant_id  # api_calls: 10,000, hard
        settings, http = service.settings, service.http
        first = [record(tenant, "api_calls", 3000) for _ in range(3)]
        await produce_usage(settings, first)
        await wait_for_events(http, settings, tenant, "api_calls", 3)
        await wait_for_alerts(settings, tenant, 1)
        crossing = [record(tenant, "api_calls", 1500)]
        await produce_usage(settings, crossing)
        await wait_for_events(http, settings, tenant, "api_calls", 4)
        # everything again (a producer retry), and more usage past the limit
        await produce_usage(settings, [*first, *crossing, record(tenant, "api_calls", 500)])
        await wait_for_events(http, settings, tenant, "api_calls", 5)

        alerts = await settled_alerts(settings, service.database.owner_url, tenant)
        assert summary(alerts) == [("threshold", "api_calls", 80), ("exceeded", "api_calls", 100)]
        reached, exceeded = alerts
        assert isinstance(reached, UsageThresholdReachedEvent)
        assert isinstance(exceeded, QuotaExceededEvent)
        period = month_of(datetime.now(UTC).date())
        assert (reached.data.value, reached.data.limit, reached.data.plan) == (9000, 10000, "free")
        assert (reached.data.period_start, reached.data.period_end) == (period.start, period.end)
        assert (exceeded.data.value, exceeded.data.limit_kind) == (10500, "hard")

    async def test_reaching_the_limit_is_within_it_and_one_more_exceeds_it(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant(plan="free")).tenant_id  # workflow_runs: 100, hard
        settings, http = service.settings, service.http
        await produce_usage(settings, [record(tenant, "workflow_runs", 100)])
        await wait_for_events(http, settings, tenant, "workflow_runs", 1)
        await wait_for_alerts(settings, tenant, 1)
        at_the_limit = await settled_alerts(settings, service.database.owner_url, tenant)
        await produce_usage(settings, [record(tenant, "workflow_runs", 1)])
        await wait_for_events(http, settings, tenant, "workflow_runs", 2)
        await wait_for_alerts(settings, tenant, 2)
        beyond = await settled_alerts(settings, service.database.owner_url, tenant)

        assert summary(at_the_limit) == [("threshold", "workflow_runs", 80)]
        assert summary(beyond) == [
            ("threshold", "workflow_runs", 80),
            ("exceeded", "workflow_runs", 100),
        ]

    async def test_a_gauge_crosses_by_its_peak_not_by_its_sum(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant(plan="free")).tenant_id  # storage: 1 GB
        settings, http = service.settings, service.http
        readings = [400_000_000, 500_000_000, 450_000_000]  # 1.35 GB summed, 0.5 GB at most
        await produce_usage(settings, [record(tenant, "storage_bytes", v) for v in readings])
        await wait_for_events(http, settings, tenant, "storage_bytes", 3)
        assert await settled_alerts(settings, service.database.owner_url, tenant) == []

        await produce_usage(settings, [record(tenant, "storage_bytes", 850_000_000)])
        await wait_for_events(http, settings, tenant, "storage_bytes", 4)
        await wait_for_alerts(settings, tenant, 1)
        alerts = await settled_alerts(settings, service.database.owner_url, tenant)
        assert summary(alerts) == [("threshold", "storage_bytes", 80)]
        assert alerts[0].data.value == 850_000_000  # type: ignore[attr-defined]

    async def test_a_plan_without_limits_raises_no_alert(self, service: RunningService) -> None:
        tenant = (await service.new_tenant(plan="enterprise")).tenant_id
        await produce_usage(service.settings, [record(tenant, "api_calls", 50_000_000)])
        await wait_for_events(service.http, service.settings, tenant, "api_calls", 1)
        assert await settled_alerts(service.settings, service.database.owner_url, tenant) == []


class TestThresholdsAcrossFailures:
    async def test_a_crash_after_the_crossing_batch_committed_announces_it_once(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        tenants: Tenants,
        faults: IngestFaults,
        test_database: TestDatabase,
    ) -> None:
        tenant = tenants.free.tenant_id
        crash = CrashOnce()
        faults.after_db_commit = crash
        await produce_usage(settings, [record(tenant, "api_calls", 4500) for _ in range(2)])
        await wait_for_events(client, settings, tenant, "api_calls", 2)
        # a later record on the same partition: once it counts, the batch was replayed
        await produce_usage(settings, [record(tenant, "workflow_runs", 1)])
        await wait_for_events(client, settings, tenant, "workflow_runs", 1)

        assert crash.crashed_batches
        await wait_for_alerts(settings, tenant, 1)
        alerts = await settled_alerts(settings, test_database.owner_url, tenant)
        assert summary(alerts) == [("threshold", "api_calls", 80)]

    async def test_a_restarted_service_does_not_announce_a_crossing_again(
        self, app: FastAPI, settings: Settings, tenants: Tenants, test_database: TestDatabase
    ) -> None:
        tenant = tenants.free.tenant_id
        async with running_app(app) as http:
            await wait_ready(http)
            await produce_usage(settings, [record(tenant, "api_calls", 8500)])
            await wait_for_events(http, settings, tenant, "api_calls", 1)
            await wait_for_alerts(settings, tenant, 1)

        # a new process: nothing in memory about what fired before
        async with running_app(create_app(settings)) as http:
            await wait_ready(http)
            await produce_usage(settings, [record(tenant, "api_calls", 100)])
            await wait_for_events(http, settings, tenant, "api_calls", 2)
            alerts = await settled_alerts(settings, test_database.owner_url, tenant)
        assert summary(alerts) == [("threshold", "api_calls", 80)]
