"""Closing billing periods: once per tenant and period, the final rated figures go out.

A background job looks for periods that ended (plus a delay for late events)
and, for each tenant the directory knows that existed in the period, rates
the period's usage under the tenant's plan and records the result in
``billing_periods`` (keyed by tenant and period start, ``ON CONFLICT DO
NOTHING``). Only a newly recorded period adds ``BillingPeriodClosed`` to the
outbox in the same transaction: replicas and restarts cannot close a period
twice. Usage arriving after the close still counts in queries, not in the
closed figures.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from stellara_contracts.events import BillingPeriodClosed, TenantSnapshot
from stellara_kit.runtime import ServiceRuntime
from stellara_kit.tenant_directory import TenantDirectory
from usage_svc import repository, service
from usage_svc.ingest.classify import deleted_since
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.plans import Period, month_of, rate
from usage_svc.settings import Settings

log = logging.getLogger(__name__)


class BillingPeriodCloser:
    def __init__(
        self,
        *,
        runtime: ServiceRuntime,
        settings: Settings,
        directory: TenantDirectory,
        meters: MeterCatalogue,
    ) -> None:
        self.runtime = runtime
        self.settings = settings
        self.directory = directory
        self.meters = meters

    async def run(self) -> None:
        """Close finished periods now and then (a runtime background task)."""
        await self.directory.ready.wait()
        while True:
            try:
                closed = await self.close_finished(datetime.now(UTC))
                if closed:
                    log.info("closed %d billing periods", closed)
            except Exception:
                log.exception("closing billing periods failed; trying again later")
            await asyncio.sleep(self.settings.billing_close_interval_seconds)

    def due_periods(self, now: datetime) -> list[Period]:
        """Periods that ended at least the close delay ago, within the lookback."""
        delay = timedelta(hours=self.settings.billing_close_delay_hours)
        oldest = now - timedelta(days=self.settings.billing_close_lookback_days)
        periods = []
        period = month_of(now.date()).previous()
        while period.end_at > oldest:
            if period.end_at + delay <= now:
                periods.append(period)
            period = period.previous()
        return periods

    async def close_finished(self, now: datetime) -> int:
        closed = 0
        for period in self.due_periods(now):
            closed += await self.close_period(period)
        return closed

    async def close_period(self, period: Period) -> int:
        db = self.runtime.db
        assert db is not None
        async with db.system_transaction() as session:
            done = await repository.closed_tenants(session, period.start)
        closed = 0
        for tenant in self.directory.all():
            if tenant.tenant_id in done or not _billable(tenant, period):
                continue
            if await self.close_tenant_period(tenant, period):
                closed += 1
        return closed

    async def close_tenant_period(self, tenant: TenantSnapshot, period: Period) -> bool:
        """Rate and record one tenant's period; False when it was closed already."""
        db, sink = self.runtime.db, self.runtime.sink
        assert db is not None and sink is not None
        plan = self.settings.plans.get(tenant.plan)
        if plan is None:
            log.warning(
                "tenant %s is on plan %r, which is not in the catalogue: period %s not closed",
                tenant.tenant_id,
                tenant.plan,
                period.start,
            )
            return False
        async with db.transaction(tenant.tenant_id) as session:
            quantities = await service.period_quantities(
                session, tenant.tenant_id, period, catalogue=self.meters
            )
            rating = rate(plan, quantities)
            event = sink.envelope(
                BillingPeriodClosed(
                    tenant_id=tenant.tenant_id,
                    plan=plan.key,
                    period_start=period.start,
                    period_end=period.end,
                    currency=plan.currency,
                    base_fee=rating.base_fee,
                    line_items=rating.line_items,
                    total=rating.total,
                ),
                id=uuid4(),
            )
            recorded = await repository.record_billing_period(
                session,
                tenant_id=tenant.tenant_id,
                period_start=period.start,
                period_end=period.end,
                plan=plan.key,
                currency=plan.currency,
                base_fee=rating.base_fee,
                total=rating.total,
                line_items=[item.model_dump(mode="json") for item in rating.line_items],
                event_id=event.id,
            )
            if recorded:
                await sink.add(session, event)
        return recorded


def _billable(tenant: TenantSnapshot, period: Period) -> bool:
    """The tenant existed during the period (created before its end, not deleted before it)."""
    if tenant.created_at >= period.end_at:
        return False
    deleted_at = deleted_since(tenant)
    return deleted_at is None or deleted_at >= period.start_at
