"""SQL of the service outside the ingestion hot path (that lives in ``ingest/repository.py``).

Usage reads answer from ``hourly_aggregates`` and ``unique_values_hourly``
only — never from raw events — so their cost follows the number of hours
asked for, not the number of events recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from stellara_kit.locks import RowLock, with_row_lock
from usage_svc import models
from usage_svc.meters import Aggregation, Meter, Totals

Bucket = Literal["hour", "day", "month"]


# --------------------------------------------------------------------- meters
def _meter(row: Any) -> Meter:
    return Meter(
        key=row.key,
        aggregation=Aggregation(row.aggregation),
        unit=row.unit,
        description=row.description,
        unique_property=row.unique_property,
    )


async def list_meters(session: AsyncSession) -> list[tuple[Meter, bool]]:
    rows = await session.execute(select(models.meters).order_by(models.meters.c.key))
    return [(_meter(row), row.has_data) for row in rows]


async def get_meter(
    session: AsyncSession, key: str, *, lock: RowLock = None
) -> tuple[Meter, bool] | None:
    statement = select(models.meters).where(models.meters.c.key == key)
    statement = with_row_lock(statement, lock)
    row = (await session.execute(statement)).first()
    return (_meter(row), row.has_data) if row is not None else None


async def insert_meter(session: AsyncSession, meter: Meter) -> bool:
    """Add a meter; False when the key exists already."""
    statement = (
        insert(models.meters)
        .values(
            key=meter.key,
            aggregation=str(meter.aggregation),
            unit=meter.unit,
            description=meter.description,
            unique_property=meter.unique_property,
            has_data=False,
            created_at=func.now(),
            updated_at=func.now(),
        )
        .on_conflict_do_nothing()
        .returning(models.meters.c.key)
    )
    return (await session.execute(statement)).first() is not None


async def update_meter(session: AsyncSession, meter: Meter) -> None:
    await session.execute(
        update(models.meters)
        .where(models.meters.c.key == meter.key)
        .values(
            aggregation=str(meter.aggregation),
            unit=meter.unit,
            description=meter.description,
            unique_property=meter.unique_property,
            updated_at=func.now(),
        )
    )


# --------------------------------------------------------------------- members
async def add_member(session: AsyncSession, tenant_id: UUID, user_id: str, role: str) -> bool:
    """True when the user was not a member before (a role change is not a new member)."""
    values = insert(models.tenant_members).values(
        tenant_id=tenant_id, user_id=user_id, role=role, added_at=func.now()
    )
    statement = values.on_conflict_do_update(
        index_elements=["tenant_id", "user_id"],
        set_={"role": values.excluded.role},
    ).returning(text("(xmax = 0) AS inserted"))
    row = (await session.execute(statement)).first()
    return bool(row and row.inserted)


async def remove_member(session: AsyncSession, tenant_id: UUID, user_id: str) -> bool:
    table = models.tenant_members
    result = await session.execute(
        table.delete()
        .where(table.c.tenant_id == tenant_id, table.c.user_id == user_id)
        .returning(table.c.user_id)
    )
    return result.first() is not None


async def count_members(session: AsyncSession, tenant_id: UUID) -> int:
    table = models.tenant_members
    count = await session.scalar(
        select(func.count()).select_from(table).where(table.c.tenant_id == tenant_id)
    )
    return int(count or 0)


# --------------------------------------------------------------------- usage reads
_FOLD_SELECT = """
    sum(sum) AS sum, sum(count) AS count, min(min) AS min, max(max) AS max,
    (array_agg(last_value ORDER BY last_at DESC, last_value DESC))[1] AS last_value,
    max(last_at) AS last_at
"""

#: the bucket a row falls in: UTC hours are kept as they are (a local clock hour repeats
#: when daylight saving ends); days and months are local dates of the time zone
_BUCKETS: dict[str, str] = {
    "hour": "hour",
    "day": "(hour AT TIME ZONE :tz)::date",
    "month": "date_trunc('month', hour AT TIME ZONE :tz)::date",
}


def _totals(row: Any) -> Totals:
    return Totals(
        sum=float(row.sum),
        count=int(row.count),
        min=row.min,
        max=row.max,
        last_value=row.last_value,
        last_at=row.last_at,
    )


def _metric_filter(metrics: Sequence[str] | None) -> str:
    return " AND metric = ANY(:metrics)" if metrics is not None else ""


async def fold_range(
    session: AsyncSession,
    tenant_id: UUID,
    start: datetime,
    end: datetime,
    metrics: Sequence[str] | None = None,
) -> dict[str, Totals]:
    """Folded figures per metric over the hours in ``[start, end)``."""
    statement = text(
        f"SELECT metric, {_FOLD_SELECT} FROM hourly_aggregates "
        "WHERE tenant_id = :tenant AND hour >= :start AND hour < :end"
        f"{_metric_filter(metrics)} GROUP BY metric"
    )
    params: dict[str, Any] = {"tenant": tenant_id, "start": start, "end": end}
    if metrics is not None:
        params["metrics"] = list(metrics)
    rows = await session.execute(statement, params)
    return {row.metric: _totals(row) for row in rows}


async def fold_by_bucket(
    session: AsyncSession,
    tenant_id: UUID,
    start: datetime,
    end: datetime,
    *,
    bucket: Bucket,
    tz: str,
    metrics: Sequence[str] | None = None,
) -> dict[tuple[str, Any], Totals]:
    """Folded figures per (metric, bucket) — bucket a UTC hour or a local date."""
    expression = _BUCKETS[bucket]
    statement = text(
        f"SELECT metric, {expression} AS bucket, {_FOLD_SELECT} FROM hourly_aggregates "
        "WHERE tenant_id = :tenant AND hour >= :start AND hour < :end"
        f"{_metric_filter(metrics)} GROUP BY metric, bucket"
    )
    params: dict[str, Any] = {"tenant": tenant_id, "start": start, "end": end, "tz": tz}
    if metrics is not None:
        params["metrics"] = list(metrics)
    rows = await session.execute(statement, params)
    return {(row.metric, row.bucket): _totals(row) for row in rows}


async def distinct_by_bucket(
    session: AsyncSession,
    tenant_id: UUID,
    start: datetime,
    end: datetime,
    *,
    metrics: Sequence[str],
    bucket: Bucket | None,
    tz: str = "UTC",
) -> dict[tuple[str, Any], int]:
    """Distinct values per (metric, bucket); bucket None: over the whole range."""
    if not metrics:
        return {}
    expression = _BUCKETS[bucket] if bucket is not None else "NULL::date"
    statement = text(
        f"SELECT metric, {expression} AS bucket, count(DISTINCT value) AS n "
        "FROM unique_values_hourly "
        "WHERE tenant_id = :tenant AND hour >= :start AND hour < :end AND metric = ANY(:metrics) "
        "GROUP BY metric, bucket"
    )
    rows = await session.execute(
        statement,
        {"tenant": tenant_id, "start": start, "end": end, "tz": tz, "metrics": list(metrics)},
    )
    return {(row.metric, row.bucket): int(row.n) for row in rows}


# --------------------------------------------------------------------- billing periods
async def closed_tenants(session: AsyncSession, period_start: date) -> set[UUID]:
    table = models.billing_periods
    rows = await session.execute(
        select(table.c.tenant_id).where(table.c.period_start == period_start)
    )
    return {row.tenant_id for row in rows}


async def record_billing_period(
    session: AsyncSession,
    *,
    tenant_id: UUID,
    period_start: date,
    period_end: date,
    plan: str,
    currency: str,
    base_fee: Decimal,
    total: Decimal,
    line_items: list[dict[str, Any]],
    event_id: UUID,
) -> bool:
    """Record a closed period once; False when it was closed before."""
    statement = (
        insert(models.billing_periods)
        .values(
            tenant_id=tenant_id,
            period_start=period_start,
            period_end=period_end,
            plan=plan,
            currency=currency,
            base_fee=base_fee,
            total=total,
            line_items=line_items,
            event_id=event_id,
            closed_at=func.now(),
        )
        .on_conflict_do_nothing()
        .returning(models.billing_periods.c.event_id)
    )
    return (await session.execute(statement)).first() is not None
