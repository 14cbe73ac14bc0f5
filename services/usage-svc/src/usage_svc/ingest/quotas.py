"""Quota thresholds: which period totals crossed which share of their plan's limit.

The ingester asks this after folding a batch, with the period totals the
batch changed. Each crossing becomes a row keyed (tenant, metric, period,
threshold) inserted with ``ON CONFLICT DO NOTHING`` in the batch's
transaction, and its alert joins the outbox only when the row is new: so an
alert is published once per key, whatever the redelivery or replica count.

``QuotaAlerts`` is the whole of it for the ingester: ``raise_alerts`` inside the
batch's transaction, ``committed`` once that transaction has committed (only then
may a key be skipped next time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID, uuid4

import asyncpg
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts import CloudEvent
from stellara_contracts.events import QuotaExceeded, UsageThresholdReached
from stellara_kit.outbox import EventSink
from stellara_kit.tenant_directory import TenantDirectory
from usage_svc.ingest.repository import PeriodTotals, ThresholdRow, record_thresholds, unique_counts
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.meters import Aggregation, fallback_meter
from usage_svc.plans import MetricTerms, Plan, month_of

ThresholdKey = tuple[UUID, str, date, int]


@dataclass(frozen=True)
class Crossing:
    row: ThresholdRow
    terms: MetricTerms
    period_end: date

    @property
    def key(self) -> ThresholdKey:
        return (self.row.tenant_id, self.row.metric, self.row.period_start, self.row.threshold)


def unique_meter_keys(
    periods: Iterable[PeriodTotals], meters: MeterCatalogue
) -> list[PeriodTotals]:
    """The period totals whose value is a distinct count (read from the value sets)."""
    out = []
    for period in periods:
        meter = meters.get(period.metric)
        if meter is not None and meter.aggregation == Aggregation.UNIQUE_COUNT:
            out.append(period)
    return out


def find_crossings(
    periods: Sequence[PeriodTotals],
    *,
    directory: TenantDirectory,
    plans: Mapping[str, Plan],
    meters: MeterCatalogue,
    thresholds: Sequence[int],
    unique_counts: Mapping[tuple[UUID, str], int],
    already_fired: set[ThresholdKey],
) -> list[Crossing]:
    crossings = []
    for period in periods:
        tenant = directory.get(period.tenant_id)
        if tenant is None:
            continue
        plan = plans.get(tenant.plan)
        terms = plan.limit(period.metric) if plan is not None else None
        if plan is None or terms is None or terms.limit is None:
            continue
        meter = meters.get(period.metric) or fallback_meter(period.metric)
        totals = period.totals
        if meter.aggregation == Aggregation.UNIQUE_COUNT:
            value = float(unique_counts.get((period.tenant_id, period.metric), 0))
        else:
            value = totals.value(meter)
        limit = float(terms.limit)
        for threshold in thresholds:
            if value < limit * threshold / 100:
                break
            if threshold >= 100 and value <= limit:
                break  # at the limit is within it: the quota is exceeded only beyond it
            key = (period.tenant_id, period.metric, period.period_start, threshold)
            if key in already_fired:
                continue
            crossings.append(
                Crossing(
                    ThresholdRow(
                        tenant_id=period.tenant_id,
                        metric=period.metric,
                        period_start=period.period_start,
                        threshold=threshold,
                        plan=plan.key,
                        limit=limit,
                        value=value,
                        event_id=uuid4(),
                    ),
                    terms=terms,
                    period_end=month_of(period.period_start).end,
                )
            )
    return crossings


def alert_event(crossing: Crossing, sink: EventSink) -> CloudEvent:
    row = crossing.row
    if row.threshold >= 100:
        return sink.envelope(
            QuotaExceeded(
                tenant_id=row.tenant_id,
                metric=row.metric,
                plan=row.plan,
                limit=row.limit,
                value=row.value,
                period_start=row.period_start,
                period_end=crossing.period_end,
                limit_kind=crossing.terms.limit_kind,
            ),
            id=row.event_id,
        )
    return sink.envelope(
        UsageThresholdReached(
            tenant_id=row.tenant_id,
            metric=row.metric,
            plan=row.plan,
            limit=row.limit,
            value=row.value,
            period_start=row.period_start,
            period_end=crossing.period_end,
            threshold_percent=row.threshold,
        ),
        id=row.event_id,
    )


@dataclass(frozen=True)
class RaisedAlerts:
    """What one batch's transaction recorded: every crossing, and the new ones (alerted)."""

    crossings: Sequence[Crossing]
    fired: Sequence[Crossing]


NO_ALERTS = RaisedAlerts((), ())


class QuotaAlerts:
    """The ingester's quota alerts: crossings recorded and announced once per key."""

    def __init__(
        self,
        *,
        directory: TenantDirectory,
        plans: Mapping[str, Plan],
        meters: MeterCatalogue,
        thresholds: Sequence[int],
        sink: EventSink,
        alerts: Counter,
    ) -> None:
        self.directory = directory
        self.plans = plans
        self.meters = meters
        self.thresholds = thresholds
        self.sink = sink
        self.alerts = alerts
        #: keys recorded (now or by an earlier run or another replica): not asked again
        self.fired: set[ThresholdKey] = set()

    async def raise_alerts(
        self, session: AsyncSession, conn: asyncpg.Connection, periods: Sequence[PeriodTotals]
    ) -> RaisedAlerts:
        """Record the crossings of ``periods`` and add the new ones' alerts to the outbox
        (in the open transaction of ``session``, whose connection is ``conn``)."""
        unique_periods = unique_meter_keys(periods, self.meters)
        counts = await unique_counts(
            conn,
            ((p.tenant_id, p.metric, *_period_bounds(p.period_start)) for p in unique_periods),
        )
        crossings = find_crossings(
            periods,
            directory=self.directory,
            plans=self.plans,
            meters=self.meters,
            thresholds=self.thresholds,
            unique_counts=counts,
            already_fired=self.fired,
        )
        if not crossings:
            return NO_ALERTS
        inserted = await record_thresholds(conn, [c.row for c in crossings])
        fired = [c for c in crossings if c.key in inserted]
        await self.sink.add(session, *(alert_event(c, self.sink) for c in fired))
        return RaisedAlerts(crossings, fired)

    def committed(self, raised: RaisedAlerts) -> None:
        """The transaction that raised these committed: remember the keys, count the alerts."""
        self.fired.update(crossing.key for crossing in raised.crossings)
        for crossing in raised.fired:
            self.alerts.labels(str(crossing.row.threshold)).inc()
        if len(self.fired) > 200_000:
            self.fired.clear()


def _period_bounds(period_start: date) -> tuple[datetime, datetime]:
    period = month_of(period_start)
    return period.start_at, period.end_at
