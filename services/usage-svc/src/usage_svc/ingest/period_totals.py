"""Period totals for ``usage.period_totals``: what the gateway's entitlement check reads.

After a batch is folded, each (tenant, metric, period) it changed is known with
its new total (``repository.PeriodTotals``, one per key whatever the number of
events): those of the current billing period become one ``PeriodTotalChanged``
each, added to the outbox in the batch's transaction, so the compacted topic
(key ``<tenant id>:<metric>``) holds every metered feature's newest total within
the ingester's batch interval plus the outbox relay's delay. Late events of a
closed period change nothing a check asks about and are not published.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from uuid import UUID

from stellara_contracts import CloudEvent
from stellara_contracts.events import PeriodTotalChanged
from stellara_kit.outbox import EventSink
from stellara_kit.tenant_directory import TenantDirectory
from usage_svc.ingest.repository import PeriodTotals
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.meters import Aggregation, fallback_meter
from usage_svc.plans import Plan, month_of


def period_total_events(
    periods: Sequence[PeriodTotals],
    *,
    directory: TenantDirectory,
    plans: Mapping[str, Plan],
    meters: MeterCatalogue,
    unique_counts: Mapping[tuple[UUID, str], int],
    sink: EventSink,
    today: date | None = None,
) -> list[CloudEvent]:
    """One ``PeriodTotalChanged`` per changed total of the current period (UTC month)."""
    current = month_of(today or datetime.now(UTC).date())
    events: list[CloudEvent] = []
    for period in periods:
        if period.period_start != current.start:
            continue
        meter = meters.get(period.metric) or fallback_meter(period.metric)
        if meter.aggregation == Aggregation.UNIQUE_COUNT:
            value = float(unique_counts.get((period.tenant_id, period.metric), 0))
        else:
            value = period.totals.value(meter)
        tenant = directory.get(period.tenant_id)
        plan = plans.get(tenant.plan) if tenant is not None else None
        terms = plan.limit(period.metric) if plan is not None else None
        events.append(
            sink.envelope(
                PeriodTotalChanged(
                    tenant_id=period.tenant_id,
                    metric=period.metric,
                    plan=tenant.plan if tenant is not None else None,
                    period_start=current.start,
                    period_end=current.end,
                    value=value,
                    limit=float(terms.limit) if terms is not None and terms.limit else None,
                    limit_kind=terms.limit_kind if terms is not None else None,
                )
            )
        )
    return events
