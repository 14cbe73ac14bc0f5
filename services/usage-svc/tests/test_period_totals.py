"""Period totals on usage.period_totals: one record per tenant, metric and batch, with the
plan's terms, published in the batch's transaction for the gateway's entitlement check."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import uuid4

from sqlalchemy import MetaData

from stellara_contracts.events import PeriodTotalChanged, PeriodTotalChangedEvent
from stellara_kit.outbox import EventSink, Outbox, outbox_table
from stellara_kit.tenant_directory import TenantDirectory
from usage_svc.ingest.period_totals import period_total_events
from usage_svc.ingest.repository import PeriodTotals
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.meters import Totals
from usage_svc.plans import BUILTIN_PLANS, month_of
from usage_svc.testing import (
    outbox_drained,
    period_totals_of,
    produce_usage,
    record,
    snapshot,
    wait_for_events,
)

from .conftest import RunningService


def _totals(value: float) -> Totals:
    now = datetime.now(UTC)
    return Totals(sum=value, count=1, min=value, max=value, last_value=value, last_at=now)


class TestPeriodTotalEvents:
    def _sink(self) -> EventSink:
        return EventSink(Outbox(outbox_table(MetaData())), source="usage-svc")

    def test_each_changed_total_of_the_period_carries_the_plan_terms(self) -> None:
        tenant = snapshot(plan="free")
        directory = TenantDirectory("unused:9092")
        directory.apply(tenant)
        today = date(2026, 12, 4)
        periods = [
            PeriodTotals(tenant.tenant_id, "workflow_runs", date(2026, 12, 1), _totals(42)),
            PeriodTotals(tenant.tenant_id, "api_calls", date(2026, 11, 1), _totals(7)),  # late
        ]

        events = period_total_events(
            periods,
            directory=directory,
            plans=BUILTIN_PLANS,
            meters=MeterCatalogue(None),
            unique_counts={},
            sink=self._sink(),
            today=today,
        )

        assert [e.data for e in events] == [
            PeriodTotalChanged(
                tenant_id=tenant.tenant_id,
                metric="workflow_runs",
                plan="free",
                period_start=date(2026, 12, 1),
                period_end=date(2027, 1, 1),
                value=42,
                limit=100,
                limit_kind="hard",
            )
        ]
        assert events[0].key == f"{tenant.tenant_id}:workflow_runs".encode()

    def test_an_unknown_tenant_or_an_unlimited_metric_has_no_limit(self) -> None:
        directory = TenantDirectory("unused:9092")
        enterprise = snapshot(plan="enterprise")
        directory.apply(enterprise)
        unknown = uuid4()
        start = month_of(datetime.now(UTC).date()).start
        periods = [
            PeriodTotals(enterprise.tenant_id, "api_calls", start, _totals(5)),
            PeriodTotals(unknown, "api_calls", start, _totals(6)),
        ]

        events = period_total_events(
            periods,
            directory=directory,
            plans=BUILTIN_PLANS,
            meters=MeterCatalogue(None),
            unique_counts={},
            sink=self._sink(),
        )

        facts = [(e.data.plan, e.data.value, e.data.limit, e.data.limit_kind) for e in events]  # type: ignore[attr-defined]
        assert facts == [("enterprise", 5, None, None), (None, 6, None, None)]


class TestPublishedTotals:
    async def test_a_batch_publishes_each_changed_total_once_with_the_new_value(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant(plan="free")).tenant_id
        settings = service.settings
        records = [record(tenant, "workflow_runs", 1) for _ in range(40)]
        records += [record(tenant, "api_calls", 2) for _ in range(10)]
        await produce_usage(settings, records)
        await wait_for_events(service.http, settings, tenant, "workflow_runs", 40)
        await wait_for_events(service.http, settings, tenant, "api_calls", 10)
        await outbox_drained(service.database.owner_url)

        published = await period_totals_of(settings, tenant)

        assert all(isinstance(e, PeriodTotalChangedEvent) for e in published)
        by_metric: dict[str, list[PeriodTotalChanged]] = {}
        for event in published:
            by_metric.setdefault(event.data.metric, []).append(event.data)  # type: ignore[attr-defined]
        # coalesced per batch: far fewer records than events, the last one the total
        assert len(by_metric["workflow_runs"]) < 40
        assert len(by_metric["api_calls"]) < 10
        last = by_metric["workflow_runs"][-1]
        period = month_of(datetime.now(UTC).date())
        assert (last.value, last.limit, last.limit_kind, last.plan) == (40, 100, "hard", "free")
        assert (last.period_start, last.period_end) == (period.start, period.end)
        assert by_metric["api_calls"][-1].value == 20

    async def test_a_redelivered_batch_publishes_no_new_total(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant(plan="starter")).tenant_id
        settings = service.settings
        records = [record(tenant, "transactions", 3) for _ in range(5)]
        await produce_usage(settings, records)
        await wait_for_events(service.http, settings, tenant, "transactions", 5)
        await outbox_drained(service.database.owner_url)
        before = await period_totals_of(settings, tenant)
        await produce_usage(settings, records)  # a producer retry: every event known
        await produce_usage(settings, [record(tenant, "transactions", 1)])
        await wait_for_events(service.http, settings, tenant, "transactions", 6)
        await outbox_drained(service.database.owner_url)

        after = await period_totals_of(settings, tenant)

        assert [e.data.value for e in after[len(before) :]] == [16]  # type: ignore[attr-defined]
