"""Plans, the invoice preview, and BillingPeriodClosed once per tenant and period."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI

from stellara_contracts import CloudEvent
from stellara_contracts.events import BillingPeriodClosedEvent, Role
from stellara_kit.testing import TestDatabase, running_app, wait_for
from usage_svc.billing import BillingPeriodCloser
from usage_svc.main import create_app
from usage_svc.plans import month_of
from usage_svc.settings import Settings

from .conftest import RunningService
from .helpers import (
    Tenants,
    alerts_of,
    headers,
    outbox_drained,
    produce_usage,
    publish_tenants,
    record,
    snapshot,
    wait_for_events,
    wait_for_tenant,
    wait_ready,
)

#: usage of last month is still inside the window; periods close as soon as they end
SERVICE_SETTINGS = {"dedup_window_days": 400, "billing_close_delay_hours": 0}

GB = 1_000_000_000


def closed_periods(alerts: list[CloudEvent]) -> list[BillingPeriodClosedEvent]:
    """The BillingPeriodClosed events among ``alerts``."""
    return [a for a in alerts if isinstance(a, BillingPeriodClosedEvent)]


def items_of(line_items: list[Any]) -> dict[str, tuple[Decimal, ...]]:
    """metric → (quantity, included, overage, unit_price, amount), from JSON or models."""
    out = {}
    for item in line_items:
        fields = item if isinstance(item, dict) else item.model_dump()
        out[fields["metric"]] = tuple(
            Decimal(str(fields[k]))
            for k in ("quantity", "included", "overage", "unit_price", "amount")
        )
    return out


# --------------------------------------------------------------------- plans
class TestPlans:
    async def test_the_plan_catalogue(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        response = await service.http.get(
            "/plans", headers=headers(service.settings, tenant, role=Role.USER)
        )
        assert response.status_code == 200, response.text
        plans = {p["key"]: p for p in response.json()}
        assert list(plans) == ["enterprise", "free", "pro", "starter"]
        api_calls = plans["starter"]["metrics"]["api_calls"]
        assert Decimal(plans["starter"]["base_fee"]) == Decimal("49.00")
        assert {k: Decimal(str(v)) for k, v in api_calls.items() if k != "limit_kind"} == {
            "included": 100_000,
            "unit_price": Decimal("0.0002"),
            "limit": 500_000,
        }
        assert api_calls["limit_kind"] == "soft"
        assert {m["limit_kind"] for m in plans["free"]["metrics"].values()} == {"hard"}
        assert all(m.get("limit") is None for m in plans["enterprise"]["metrics"].values())
        # figures in plain notation, as billing systems expect them
        storage = plans["enterprise"]["metrics"]["storage_bytes"]
        assert (storage["unit_price"], storage["included"]) == ("0.0000000005", "2000000000000")

    async def test_plans_need_a_token(self, service: RunningService) -> None:
        assert (await service.http.get("/plans")).status_code == 401


# --------------------------------------------------------------------- invoice preview
class TestInvoicePreview:
    async def _starter_with_usage(self, service: RunningService) -> Any:
        tenant = (await service.new_tenant(plan="starter")).tenant_id
        now = datetime.now(UTC)
        await produce_usage(
            service.settings,
            [record(tenant, "api_calls", 60_000, occurred_at=now) for _ in range(2)]
            + [record(tenant, "workflow_runs", 550, occurred_at=now) for _ in range(2)]
            + [record(tenant, "transactions", 500, occurred_at=now)]
            # storage is billed by the period's peak, not the sum of readings
            + [record(tenant, "storage_bytes", v * GB, occurred_at=now) for v in (8, 12, 9)],
        )
        await wait_for_events(service.http, service.settings, tenant, "storage_bytes", 3)
        await wait_for_events(service.http, service.settings, tenant, "workflow_runs", 2)
        return tenant

    async def test_rated_line_items_of_the_current_period(self, service: RunningService) -> None:
        tenant = await self._starter_with_usage(service)

        response = await service.http.get(
            f"/tenants/{tenant}/usage/invoice-preview", headers=headers(service.settings, tenant)
        )
        assert response.status_code == 200, response.text
        preview = response.json()
        period = month_of(datetime.now(UTC).date())
        assert (preview["plan"], preview["currency"]) == ("starter", "USD")
        assert (preview["period_start"], preview["period_end"]) == (
            period.start.isoformat(),
            period.end.isoformat(),
        )
        D = Decimal
        assert items_of(preview["line_items"]) == {
            # metric: quantity, included, overage, unit price, amount
            "api_calls": (D(120_000), D(100_000), D(20_000), D("0.0002"), D("4.00")),
            "workflow_runs": (D(1100), D(1000), D(100), D("0.05"), D("5.00")),
            "transactions": (D(500), D(10_000), D(0), D("0.01"), D("0.00")),
            "storage_bytes": (D(12 * GB), D(10 * GB), D(2 * GB), D("0.000000002"), D("4.00")),
            "active_users": (D(0), D(10), D(0), D("5.00"), D("0.00")),
        }
        assert (D(preview["base_fee"]), D(preview["total"])) == (D("49.00"), D("62.00"))

    async def test_the_preview_as_csv(self, service: RunningService) -> None:
        tenant = await self._starter_with_usage(service)

        response = await service.http.get(
            f"/tenants/{tenant}/usage/invoice-preview",
            headers={**headers(service.settings, tenant), "accept": "text/csv"},
        )
        assert response.headers["content-type"].startswith("text/csv")
        rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(response.text))}
        assert (rows["api_calls"]["overage"], rows["api_calls"]["amount"]) == ("20000", "4.00")
        # in plain notation, exactly as the JSON answer writes them (not 2E-9, 1E+1)
        assert rows["storage_bytes"]["unit_price"] == "0.000000002"
        json_answer = await service.http.get(
            f"/tenants/{tenant}/usage/invoice-preview", headers=headers(service.settings, tenant)
        )
        assert rows == {item["metric"]: item for item in json_answer.json()["line_items"]}

    async def test_a_plan_missing_from_the_catalogue_is_a_conflict(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant(plan="legacy-2019")).tenant_id

        response = await service.http.get(
            f"/tenants/{tenant}/usage/invoice-preview", headers=headers(service.settings, tenant)
        )
        assert response.status_code == 409
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "legacy-2019" in response.json()["detail"]


# --------------------------------------------------------------------- closing periods
class TestPeriodClose:
    async def test_last_months_figures_are_published_once(self, service: RunningService) -> None:
        tenant = (await service.new_tenant(plan="starter")).tenant_id
        last_month = month_of(datetime.now(UTC).date()).previous()
        late_in_it = last_month.end_at - timedelta(hours=12)
        await produce_usage(
            service.settings,
            [record(tenant, "api_calls", 75_000, occurred_at=late_in_it) for _ in range(2)]
            + [record(tenant, "api_calls", 99, occurred_at=datetime.now(UTC))],  # this month
        )
        await wait_for_events(
            service.http,
            service.settings,
            tenant,
            "api_calls",
            3,
            start=last_month.start.isoformat(),
        )

        closer: BillingPeriodCloser = service.app.state.billing
        assert await closer.close_finished(datetime.now(UTC)) >= 1
        # the job runs again, and so does another replica's
        replica = BillingPeriodCloser(
            runtime=service.app.state.runtime,
            settings=service.settings,
            directory=service.app.state.parts.directory,
            meters=service.app.state.parts.meters,
        )
        assert await replica.close_period(last_month) == 0
        assert await closer.close_finished(datetime.now(UTC)) == 0

        await outbox_drained(service.database.owner_url)
        closed = closed_periods(await alerts_of(service.settings, tenant))
        assert Counter(c.data.period_start for c in closed).most_common(1)[0][1] == 1
        (figures,) = [c.data for c in closed if c.data.period_start == last_month.start]
        assert (figures.plan, figures.period_end) == ("starter", last_month.end)
        assert items_of(figures.line_items)["api_calls"] == (
            Decimal(150_000),
            Decimal(100_000),
            Decimal(50_000),
            Decimal("0.0002"),
            Decimal("10.00"),
        )
        assert (figures.base_fee, figures.total) == (Decimal("49.00"), Decimal("59.00"))

    async def test_a_tenant_created_after_a_period_is_not_billed_for_it(
        self, service: RunningService
    ) -> None:
        now = datetime.now(UTC)
        newcomer = snapshot(plan="starter").model_copy(
            update={"created_at": now, "updated_at": now}
        )
        await publish_tenants(service.settings, newcomer)
        await wait_for_tenant(service.app, newcomer.tenant_id)

        closer: BillingPeriodCloser = service.app.state.billing
        await closer.close_finished(now)
        await outbox_drained(service.database.owner_url)
        assert closed_periods(await alerts_of(service.settings, newcomer.tenant_id)) == []


class TestPeriodCloseInTheBackground:
    async def test_each_tenant_and_period_is_closed_once_across_restarts(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        settings: Settings,
        tenants: Tenants,
        test_database: TestDatabase,
    ) -> None:
        due = app.state.billing.due_periods(datetime.now(UTC))
        billed = [tenants.free.tenant_id, tenants.starter.tenant_id]

        async def closed() -> list[BillingPeriodClosedEvent]:
            return [e for t in billed for e in closed_periods(await alerts_of(settings, t))]

        await wait_for(closed, until=lambda found: len(found) == len(billed) * len(due))
        # a second process starts on the same database: its close job finds nothing to do
        second = create_app(settings)
        async with running_app(second) as other:
            await wait_ready(other)
            await second.state.billing.close_finished(datetime.now(UTC))
        await outbox_drained(test_database.owner_url)

        found = await closed()
        assert Counter((e.tenantid, e.data.period_start) for e in found) == {
            (tenant, period.start): 1 for tenant in billed for period in due
        }
        assert closed_periods(await alerts_of(settings, tenants.deleted.tenant_id)) == []
