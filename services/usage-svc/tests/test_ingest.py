"""Ingestion from usage.recorded: exact totals under redelivery, crashes, disorder."""

from __future__ import annotations

import httpx

from usage_svc.settings import Settings
from usage_svc.testing import Tenants, produce_usage, record, wait_for_events


class TestTotals:
    async def test_events_are_summed_per_metric(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        tenant = tenants.starter.tenant_id
        await produce_usage(
            settings,
            [record(tenant, "api_calls", 2) for _ in range(10)]
            + [record(tenant, "workflow_runs", 1) for _ in range(3)],
        )
        calls = await wait_for_events(client, settings, tenant, "api_calls", 10)
        runs = await wait_for_events(client, settings, tenant, "workflow_runs", 3)
        assert (calls["value"], runs["value"]) == (20, 3)
