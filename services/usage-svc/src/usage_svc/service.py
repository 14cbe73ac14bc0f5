"""Usage queries: summaries, series in a time zone, trends, and the figures of a period;
and the ``active_users`` measurement of membership changes.

Everything here reads folded hourly figures (never raw events). A range is
resolved to whole UTC hours; a local day is the hours from one local midnight
to the next, so a day with a daylight-saving change has 23 or 25 of them.
(Time zones whose offset is not a whole number of hours are resolved to the
hour.) Plain code taking the session first; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts.events import MemberAddedEvent, MemberRemovedEvent, UsageRecorded
from stellara_kit.bounds import SUPPORTED_DATES, supported_date, supported_instant
from stellara_kit.outbox import EventSink
from usage_svc import repository
from usage_svc.errors import InvalidQuery
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.meters import Aggregation, Meter, Totals, fallback_meter
from usage_svc.plans import Period, Plan, Rating, period_of, rate
from usage_svc.settings import Settings

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
Window = Literal["hour", "day", "month"]
TrendPeriod = Literal["7d", "30d"]
MOVING_AVERAGE_DAYS = 7
UTC_ZONE = ZoneInfo("UTC")


# --------------------------------------------------------------------- ranges
@dataclass(frozen=True)
class TimeRange:
    """``[start, end)`` in UTC, on whole hours."""

    start: datetime
    end: datetime

    @property
    def days(self) -> float:
        return (self.end - self.start) / DAY


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as exc:
        raise InvalidQuery(f"{name!r} is not an IANA time zone (e.g. Europe/Berlin).") from exc


def floor_hour(instant: datetime) -> datetime:
    instant = instant.astimezone(UTC)
    return instant.replace(minute=0, second=0, microsecond=0)


def ceil_hour(instant: datetime) -> datetime:
    floored = floor_hour(instant)
    return floored if floored == instant.astimezone(UTC) else floored + HOUR


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The instant a local day starts, in UTC."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def parse_bound(text: str, tz: ZoneInfo, *, end: bool) -> datetime:
    """A date (a whole local day: ``to`` includes it) or an ISO 8601 instant."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if not supported_date(day):
                raise _out_of_range(text, end=end)
            return local_midnight(day + DAY if end else day, tz)
        instant = datetime.fromisoformat(value.replace(" ", "+") if "T" in value else value)
    except ValueError as exc:
        raise InvalidQuery(
            f"{text!r} is neither a date (2026-12-01) nor an ISO 8601 instant "
            "(2026-12-01T10:00:00Z)."
        ) from exc
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=tz)
    utc = supported_instant(instant)
    if utc is None:
        raise _out_of_range(text, end=end)
    return utc


def _out_of_range(text: str, *, end: bool) -> InvalidQuery:
    message = f"{text!r} is outside the dates usage can be asked for ({SUPPORTED_DATES})."
    location = "query.to" if end else "query.from"
    return InvalidQuery(
        f"{location}: {message}",
        errors=[{"location": location, "message": message, "type": "date_range"}],
    )


def resolve_range(
    start: str | None,
    end: str | None,
    *,
    tz: ZoneInfo,
    default_start: datetime,
    now: datetime,
    max_days: int,
) -> TimeRange:
    """The hours a query covers: ``from`` rounded down, ``to`` up, to whole hours."""
    lower = parse_bound(start, tz, end=False) if start else default_start
    upper = parse_bound(end, tz, end=True) if end else now
    resolved = TimeRange(floor_hour(lower), ceil_hour(upper))
    if resolved.end <= resolved.start:
        raise InvalidQuery("`to` must be after `from`.")
    if resolved.days > max_days:
        raise InvalidQuery(f"A query may cover at most {max_days} days.")
    return resolved


# --------------------------------------------------------------------- meters in play
def meters_for(
    catalogue: MeterCatalogue, requested: Sequence[str] | None, with_data: Sequence[str] = ()
) -> list[Meter]:
    """The meters asked for (all of the catalogue when none), and others that have data."""
    if requested:
        return [catalogue.get(key) or fallback_meter(key) for key in dict.fromkeys(requested)]
    keys = [m.key for m in catalogue.all()]
    keys += sorted(set(with_data) - set(keys))
    return [catalogue.get(key) or fallback_meter(key) for key in keys]


def _unique_keys(meters: Sequence[Meter]) -> list[str]:
    return [m.key for m in meters if m.aggregation == Aggregation.UNIQUE_COUNT]


def _with_unique(totals: Totals | None, unique: int | None) -> Totals:
    base = totals or Totals()
    if unique is None:
        return base
    return Totals(
        sum=base.sum,
        count=base.count,
        min=base.min,
        max=base.max,
        last_value=base.last_value,
        last_at=base.last_at,
        unique=unique,
    )


# --------------------------------------------------------------------- series
@dataclass(frozen=True)
class SeriesPoint:
    metric: str
    start: datetime  # the bucket's first instant, in the time zone asked for
    day: date  # the local date the bucket starts on
    value: float
    events: int


def buckets(window: Window, span: TimeRange, tz: ZoneInfo) -> list[tuple[Any, datetime, date]]:
    """Every bucket of ``span``: (the key the query groups by, start instant, local date)."""
    out: list[tuple[Any, datetime, date]] = []
    if window == "hour":
        at = span.start
        while at < span.end:
            local = at.astimezone(tz)
            out.append((at, local, local.date()))
            at += HOUR
        return out
    first = span.start.astimezone(tz).date()
    last = (span.end - timedelta(microseconds=1)).astimezone(tz).date()
    if window == "day":
        day = first
        while day <= last:
            out.append((day, local_midnight(day, tz).astimezone(tz), day))
            day += DAY
        return out
    month = date(first.year, first.month, 1)
    while month <= last:
        out.append((month, local_midnight(month, tz).astimezone(tz), month))
        month = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    return out


async def series(
    session: AsyncSession,
    tenant_id: UUID,
    span: TimeRange,
    *,
    window: Window,
    tz: ZoneInfo,
    catalogue: MeterCatalogue,
    metrics: Sequence[str] | None,
) -> list[SeriesPoint]:
    """One point per metric and bucket of ``span``; buckets without usage are zero."""
    folded = await repository.fold_by_bucket(
        session, tenant_id, span.start, span.end, bucket=window, tz=tz.key, metrics=metrics
    )
    meters = meters_for(catalogue, metrics, [metric for metric, _ in folded])
    distinct = await repository.distinct_by_bucket(
        session,
        tenant_id,
        span.start,
        span.end,
        metrics=_unique_keys(meters),
        bucket=window,
        tz=tz.key,
    )
    points = []
    for meter in meters:
        for key, start, day in buckets(window, span, tz):
            totals = _with_unique(
                folded.get((meter.key, key)),
                distinct.get((meter.key, key), 0)
                if meter.aggregation == Aggregation.UNIQUE_COUNT
                else None,
            )
            points.append(SeriesPoint(meter.key, start, day, totals.value(meter), totals.count))
    return points


# --------------------------------------------------------------------- summary
@dataclass(frozen=True)
class MetricSummary:
    meter: Meter
    value: float
    events: int
    daily_average: float
    peak_day: date | None
    peak_value: float | None


async def range_totals(
    session: AsyncSession,
    tenant_id: UUID,
    span: TimeRange,
    meters: Sequence[Meter],
) -> dict[str, Totals]:
    """Folded figures per meter over the whole span (distinct counts included)."""
    keys = [m.key for m in meters]
    folded = await repository.fold_range(session, tenant_id, span.start, span.end, keys)
    distinct = await repository.distinct_by_bucket(
        session, tenant_id, span.start, span.end, metrics=_unique_keys(meters), bucket=None
    )
    return {
        m.key: _with_unique(
            folded.get(m.key),
            distinct.get((m.key, None), 0) if m.aggregation == Aggregation.UNIQUE_COUNT else None,
        )
        for m in meters
    }


async def summary(
    session: AsyncSession,
    tenant_id: UUID,
    span: TimeRange,
    *,
    tz: ZoneInfo,
    catalogue: MeterCatalogue,
    metrics: Sequence[str] | None,
) -> list[MetricSummary]:
    """Per metric: the value under its aggregation, events, daily average and peak day."""
    daily = await series(
        session, tenant_id, span, window="day", tz=tz, catalogue=catalogue, metrics=metrics
    )
    meters = meters_for(catalogue, metrics, [p.metric for p in daily])
    totals = await range_totals(session, tenant_id, span, meters)
    out = []
    for meter in meters:
        points = [p for p in daily if p.metric == meter.key]
        with_data = [p for p in points if p.events]
        if meter.is_additive:
            average = totals[meter.key].value(meter) / len(points) if points else 0.0
        else:
            average = sum(p.value for p in with_data) / len(with_data) if with_data else 0.0
        peak = max(with_data, key=lambda p: (p.value, -p.day.toordinal()), default=None)
        out.append(
            MetricSummary(
                meter=meter,
                value=totals[meter.key].value(meter),
                events=totals[meter.key].count,
                daily_average=average,
                peak_day=peak.day if peak else None,
                peak_value=peak.value if peak else None,
            )
        )
    return out


# --------------------------------------------------------------------- trends
@dataclass(frozen=True)
class TrendPoint:
    day: date
    value: float
    moving_average: float


@dataclass(frozen=True)
class Projection:
    period: Period
    to_date: float
    projected: float
    limit: float | None

    @property
    def percent_of_limit(self) -> float | None:
        return round(self.projected / self.limit * 100, 2) if self.limit else None


@dataclass(frozen=True)
class MetricTrend:
    meter: Meter
    days: int
    current: TimeRange
    current_value: float
    previous: TimeRange
    previous_value: float
    points: list[TrendPoint]
    projection: Projection

    @property
    def change(self) -> float:
        return self.current_value - self.previous_value

    @property
    def change_percent(self) -> float | None:
        if not self.previous_value:
            return None
        return round(self.change / abs(self.previous_value) * 100, 2)

    @property
    def moving_average(self) -> float:
        return self.points[-1].moving_average if self.points else 0.0


async def trends(
    session: AsyncSession,
    tenant_id: UUID,
    *,
    period: TrendPeriod,
    now: datetime,
    catalogue: MeterCatalogue,
    metrics: Sequence[str] | None,
    plan: Plan | None,
) -> list[MetricTrend]:
    """The last N days against the N before, a moving average, and where the period ends up."""
    days = 7 if period == "7d" else 30
    end = ceil_hour(now)
    current = TimeRange(end - days * DAY, end)
    previous = TimeRange(end - 2 * days * DAY, end - days * DAY)
    billing = period_of(plan, now)
    to_date_span = TimeRange(billing.start_at, end)

    # the last `days` calendar days (UTC), and the days before them the moving average needs
    first_day = end.date() - (days - 1) * DAY if end.time() != time(0) else end.date() - days * DAY
    series_span = TimeRange(
        local_midnight(first_day - (MOVING_AVERAGE_DAYS - 1) * DAY, UTC_ZONE), end
    )
    daily = await series(
        session,
        tenant_id,
        series_span,
        window="day",
        tz=UTC_ZONE,
        catalogue=catalogue,
        metrics=metrics,
    )
    meters = meters_for(catalogue, metrics, [p.metric for p in daily if p.events])
    now_totals = await range_totals(session, tenant_id, current, meters)
    before_totals = await range_totals(session, tenant_id, previous, meters)
    to_date_totals = await range_totals(session, tenant_id, to_date_span, meters)
    remaining_days = max(0.0, (billing.end_at - now) / DAY)

    out = []
    for meter in meters:
        values = [(p.day, p.value) for p in daily if p.metric == meter.key]
        points = []
        for index, (day, value) in enumerate(values):
            if day < first_day:
                continue
            window = [v for _, v in values[max(0, index - MOVING_AVERAGE_DAYS + 1) : index + 1]]
            points.append(TrendPoint(day, value, sum(window) / len(window)))
        current_value = now_totals[meter.key].value(meter)
        to_date = to_date_totals[meter.key].value(meter)
        projected = (
            to_date + (current_value / days) * remaining_days if meter.is_additive else to_date
        )
        terms = plan.limit(meter.key) if plan is not None else None
        out.append(
            MetricTrend(
                meter=meter,
                days=days,
                current=current,
                current_value=current_value,
                previous=previous,
                previous_value=before_totals[meter.key].value(meter),
                points=points,
                projection=Projection(
                    period=billing,
                    to_date=to_date,
                    projected=projected,
                    limit=float(terms.limit) if terms and terms.limit is not None else None,
                ),
            )
        )
    return out


# --------------------------------------------------------------------- billing figures
async def period_quantities(
    session: AsyncSession, tenant_id: UUID, period: Period, *, catalogue: MeterCatalogue
) -> dict[str, float]:
    """Each metric's quantity over a billing period, under its meter's aggregation."""
    span = TimeRange(period.start_at, period.end_at)
    folded = await repository.fold_range(session, tenant_id, span.start, span.end)
    meters = meters_for(catalogue, None, list(folded))
    totals = await range_totals(session, tenant_id, span, meters)
    return {m.key: totals[m.key].value(m) for m in meters if totals[m.key].count}


async def invoice_preview(
    session: AsyncSession,
    tenant_id: UUID,
    *,
    plan: Plan,
    now: datetime,
    catalogue: MeterCatalogue,
) -> tuple[Period, Rating]:
    period = period_of(plan, now)
    quantities = await period_quantities(session, tenant_id, period, catalogue=catalogue)
    return period, rate(plan, quantities)


# --------------------------------------------------------------------- active users
ACTIVE_USERS = "active_users"
#: namespace of the ids of the active_users measurements derived from membership events
ACTIVE_USERS_NAMESPACE = UUID("6f1d3c2e-8a4b-4f5e-9c7d-2b1a0e9f8d7c")


async def record_membership_change(
    session: AsyncSession,
    event: MemberAddedEvent | MemberRemovedEvent,
    *,
    sink: EventSink,
    settings: Settings,
) -> None:
    """A membership change becomes an ``active_users`` measurement: the member count after
    it, recorded as a UsageRecorded event through the outbox so it takes the same road
    (dedup, aggregates, quotas) as every other measurement. Its id derives from the
    membership event's id, so even a replayed membership event counts once; a change that
    changes nothing (a role change, a member removed twice) is no measurement."""
    tenant_id = event.data.tenant_id
    if isinstance(event, MemberAddedEvent):
        changed = await repository.add_member(
            session, tenant_id, event.data.user_id, str(event.data.role)
        )
    else:
        changed = await repository.remove_member(session, tenant_id, event.data.user_id)
    if not changed:
        return
    members = await repository.count_members(session, tenant_id)
    measurement = UsageRecorded(
        tenant_id=tenant_id,
        metric=ACTIVE_USERS,
        value=members,
        occurred_at=_measured_at(event.time, settings),
        properties={"cause": event.type.rsplit(".", 2)[-2]},
    )
    await sink.add(
        session, sink.envelope(measurement, id=uuid5(ACTIVE_USERS_NAMESPACE, str(event.id)))
    )


def _measured_at(happened: datetime, settings: Settings) -> datetime:
    """When the member count changed; a membership event replayed from long ago (a new
    deployment reading history) is measured now, inside the deduplication window."""
    now = datetime.now(UTC)
    oldest = now - timedelta(days=settings.dedup_window_days) + timedelta(hours=1)
    return happened if oldest <= happened <= now else now
