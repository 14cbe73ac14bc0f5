"""usage-svc HTTP routes (thin: parse, authorize, open the transaction, call the service)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import Field

from stellara_contracts.events import TenantSnapshot
from stellara_contracts.patterns import METER_KEY_PATTERN
from stellara_kit.auth import CurrentPrincipal
from stellara_kit.problems import problem_responses
from usage_svc import meter_admin, service
from usage_svc.deps import Parts, UsageParts, csv_response, ok_response, wants_csv
from usage_svc.errors import PlanNotInCatalogue
from usage_svc.plans import BUILTIN_PLANS, Plan, period_of
from usage_svc.schemas import (
    EXAMPLE_TENANT,
    INVOICE_PREVIEW_CSV,
    INVOICE_PREVIEW_EXAMPLE,
    METER_LIST_EXAMPLE,
    USAGE_SERIES_CSV,
    USAGE_SERIES_EXAMPLE,
    USAGE_SUMMARY_CSV,
    USAGE_SUMMARY_EXAMPLE,
    USAGE_TRENDS_CSV,
    USAGE_TRENDS_EXAMPLE,
    InvoicePreview,
    MeterIn,
    MeterList,
    MeterOut,
    MetricTrendOut,
    MetricUsage,
    TrendDay,
    TrendWindow,
    UsagePoint,
    UsageProjection,
    UsageSeries,
    UsageSummary,
    UsageTrends,
)
from usage_svc.service import TimeRange

router = APIRouter()

TenantId = Annotated[
    UUID, Path(description="The tenant whose usage is read.", examples=[EXAMPLE_TENANT])
]
From = Annotated[
    str | None,
    Query(
        alias="from",
        description="A date (whole local day) or an ISO 8601 instant; default: the start of "
        "the current billing period.",
        examples=["2026-12-01"],
    ),
]
To = Annotated[
    str | None,
    Query(
        description="A date (included) or an ISO 8601 instant (exclusive); default: now.",
        examples=["2026-12-31"],
    ),
]
Metrics = Annotated[
    list[Annotated[str, Field(pattern=METER_KEY_PATTERN)]] | None,
    Query(
        alias="metric",
        description="Meter keys (repeat for several); default: all.",
        examples=[["api_calls", "storage_bytes"]],
    ),
]
TimeZone = Annotated[
    str, Query(description="IANA time zone the days are counted in.", examples=["Europe/Berlin"])
]

_READ_ERRORS = problem_responses(401, 403, 404, 422)


def _now() -> datetime:
    return datetime.now(UTC)


def _span(
    parts: UsageParts,
    tenant: TenantSnapshot,
    start: str | None,
    to: str | None,
    zone: ZoneInfo,
    *,
    max_days: int,
) -> TimeRange:
    """The range asked for; from the start of the tenant's current billing period by default."""
    now = _now()
    return service.resolve_range(
        start,
        to,
        tz=zone,
        default_start=period_of(parts.settings.plans.get(tenant.plan), now).start_at,
        now=now,
        max_days=max_days,
    )


# --------------------------------------------------------------------- usage
@router.get(
    "/tenants/{tenant_id}/usage",
    tags=["usage"],
    summary="Usage per metric over a range",
    response_model=UsageSummary,
    responses={**_READ_ERRORS, **ok_response(USAGE_SUMMARY_EXAMPLE, USAGE_SUMMARY_CSV)},
)
async def get_usage(
    tenant_id: TenantId,
    request: Request,
    parts: Parts,
    principal: CurrentPrincipal,
    start: From = None,
    to: To = None,
    metric: Metrics = None,
    tz: TimeZone = "UTC",
) -> UsageSummary | Response:
    """Per metric: the value under its aggregation, the event count, the daily average and the
    peak day. Answers from hourly aggregates; ranges resolve to whole hours."""
    async with parts.tenant_unit(tenant_id, principal, access="read") as (session, tenant):
        zone = service.zone(tz)
        span = _span(parts, tenant, start, to, zone, max_days=parts.settings.query_max_days)
        results = await service.summary(
            session, tenant_id, span, tz=zone, catalogue=parts.meters, metrics=metric
        )
    items = [
        MetricUsage(
            metric=r.meter.key,
            aggregation=r.meter.aggregation,
            unit=r.meter.unit,
            value=r.value,
            events=r.events,
            daily_average=round(r.daily_average, 6),
            peak_day=r.peak_day,
            peak_value=r.peak_value,
        )
        for r in results
    ]
    if wants_csv(request):
        return csv_response(
            [
                "metric",
                "aggregation",
                "unit",
                "value",
                "events",
                "daily_average",
                "peak_day",
                "peak_value",
            ],
            (
                [
                    i.metric,
                    i.aggregation,
                    i.unit,
                    i.value,
                    i.events,
                    i.daily_average,
                    i.peak_day,
                    i.peak_value,
                ]
                for i in items
            ),
            filename=f"usage-{tenant_id}.csv",
        )
    return UsageSummary(tenant_id=tenant_id, start=span.start, end=span.end, tz=tz, metrics=items)


@router.get(
    "/tenants/{tenant_id}/usage/daily",
    tags=["usage"],
    summary="Usage per day (or hour, or month) in a time zone",
    response_model=UsageSeries,
    responses={**_READ_ERRORS, **ok_response(USAGE_SERIES_EXAMPLE, USAGE_SERIES_CSV)},
)
async def get_usage_daily(
    tenant_id: TenantId,
    request: Request,
    parts: Parts,
    principal: CurrentPrincipal,
    start: From = None,
    to: To = None,
    metric: Metrics = None,
    tz: TimeZone = "UTC",
    window: Annotated[
        Literal["hour", "day", "month"],
        Query(description="Bucket size; days and months are local to `tz`.", examples=["day"]),
    ] = "day",
) -> UsageSeries | Response:
    """One row per metric and local day (hour, month) of the range, with zeros for days without
    usage; a day with a daylight-saving change covers 23 or 25 hours."""
    async with parts.tenant_unit(tenant_id, principal, access="read") as (session, tenant):
        zone = service.zone(tz)
        max_days = parts.settings.query_max_days if window != "hour" else 31
        span = _span(parts, tenant, start, to, zone, max_days=max_days)
        points = await service.series(
            session, tenant_id, span, window=window, tz=zone, catalogue=parts.meters, metrics=metric
        )
    rows = [
        UsagePoint(date=p.day, start=p.start, metric=p.metric, value=p.value, events=p.events)
        for p in sorted(points, key=lambda p: (p.start, p.metric))
    ]
    if wants_csv(request):
        return csv_response(
            ["date", "start", "metric", "value", "events"],
            ([r.date, r.start, r.metric, r.value, r.events] for r in rows),
            filename=f"usage-{window}-{tenant_id}.csv",
        )
    return UsageSeries(
        tenant_id=tenant_id, start=span.start, end=span.end, tz=tz, window=window, rows=rows
    )


@router.get(
    "/tenants/{tenant_id}/usage/trends",
    tags=["usage"],
    summary="This period against the previous one, with a projection",
    response_model=UsageTrends,
    responses={**_READ_ERRORS, **ok_response(USAGE_TRENDS_EXAMPLE, USAGE_TRENDS_CSV)},
)
async def get_usage_trends(
    tenant_id: TenantId,
    request: Request,
    parts: Parts,
    principal: CurrentPrincipal,
    metric: Metrics = None,
    period: Annotated[
        Literal["7d", "30d"],
        Query(description="Length of the periods compared.", examples=["7d"]),
    ] = "7d",
) -> UsageTrends | Response:
    """The last 7 (30) days against the 7 (30) before: absolute and percent change, a trailing
    7-day moving average per day, and a projection to the end of the billing period."""
    async with parts.tenant_unit(tenant_id, principal, access="read") as (session, tenant):
        now = _now()
        results = await service.trends(
            session,
            tenant_id,
            period=period,
            now=now,
            catalogue=parts.meters,
            metrics=metric,
            plan=parts.settings.plans.get(tenant.plan),
        )
    items = [
        MetricTrendOut(
            metric=t.meter.key,
            aggregation=t.meter.aggregation,
            unit=t.meter.unit,
            period=period,
            current=TrendWindow(start=t.current.start, end=t.current.end, value=t.current_value),
            previous=TrendWindow(
                start=t.previous.start, end=t.previous.end, value=t.previous_value
            ),
            change=t.change,
            change_percent=t.change_percent,
            moving_average=round(t.moving_average, 6),
            days=[
                TrendDay(date=p.day, value=p.value, moving_average=round(p.moving_average, 6))
                for p in t.points
            ],
            projection=UsageProjection(
                period_start=t.projection.period.start,
                period_end=t.projection.period.end,
                to_date=t.projection.to_date,
                projected=round(t.projection.projected, 6),
                limit=t.projection.limit,
                percent_of_limit=t.projection.percent_of_limit,
            ),
        )
        for t in results
    ]
    if wants_csv(request):
        return csv_response(
            ["metric", "date", "value", "moving_average"],
            ([i.metric, d.date, d.value, d.moving_average] for i in items for d in i.days),
            filename=f"usage-trends-{tenant_id}.csv",
        )
    return UsageTrends(tenant_id=tenant_id, as_of=now, metrics=items)


@router.get(
    "/tenants/{tenant_id}/usage/invoice-preview",
    tags=["billing"],
    summary="Rated line items of the current billing period",
    response_model=InvoicePreview,
    responses={
        **_READ_ERRORS,
        **problem_responses(409),
        **ok_response(INVOICE_PREVIEW_EXAMPLE, INVOICE_PREVIEW_CSV),
    },
)
async def get_invoice_preview(
    tenant_id: TenantId, request: Request, parts: Parts, principal: CurrentPrincipal
) -> InvoicePreview | Response:
    """What the period costs so far: per metric the quantity, included units, overage, unit
    price and amount, then the total with the plan's base fee. Billing figures are for the
    tenant's admins (and platform admins), as at the gateway."""
    async with parts.tenant_unit(tenant_id, principal, access="read") as (session, tenant):
        principal.require_admin(tenant_id)
        plan = parts.settings.plans.get(tenant.plan)
        if plan is None:
            raise PlanNotInCatalogue(
                f"The tenant's plan {tenant.plan!r} is not in the plan catalogue; add it to "
                "USAGE_SVC_PLANS or USAGE_SVC_PLANS_FILE.",
                plan=tenant.plan,
            )
        now = _now()
        period, rating = await service.invoice_preview(
            session, tenant_id, plan=plan, now=now, catalogue=parts.meters
        )
    if wants_csv(request):
        return csv_response(
            ["metric", "quantity", "included", "overage", "unit_price", "amount"],
            (
                [i.metric, i.quantity, i.included, i.overage, i.unit_price, i.amount]
                for i in rating.line_items
            ),
            filename=f"invoice-preview-{tenant_id}.csv",
        )
    return InvoicePreview(
        tenant_id=tenant_id,
        plan=plan.key,
        currency=plan.currency,
        period_start=period.start,
        period_end=period.end,
        as_of=now,
        base_fee=rating.base_fee,
        line_items=rating.line_items,
        total=rating.total,
    )


# --------------------------------------------------------------------- plans and meters
@router.get(
    "/plans",
    tags=["billing"],
    summary="The plan catalogue",
    response_model=list[Plan],
    responses={
        **problem_responses(401),
        **ok_response([BUILTIN_PLANS["starter"].model_dump(mode="json")]),
    },
)
async def list_plans(parts: Parts, principal: CurrentPrincipal) -> list[Plan]:
    """Every plan: base fee, billing period, and per metric the included units, unit price and
    limit (soft or hard)."""
    return [parts.settings.plans[key] for key in sorted(parts.settings.plans)]


@router.get(
    "/meters",
    tags=["meters"],
    summary="The meter catalogue",
    response_model=MeterList,
    responses={**problem_responses(401), **ok_response(METER_LIST_EXAMPLE)},
)
async def list_meters(parts: Parts, principal: CurrentPrincipal) -> MeterList:
    """Every meter: key, aggregation, unit, description, and whether it has data."""
    async with parts.db.unscoped_transaction() as session:
        stored = await meter_admin.list_meters(session)
    return MeterList(items=[MeterOut.of(meter, has_data) for meter, has_data in stored])


@router.post(
    "/meters",
    tags=["meters"],
    summary="Add a meter (platform_admin)",
    response_model=MeterOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "The meter existed; unit/description updated.", "model": MeterOut},
        **problem_responses(401, 403, 409, 422),
    },
)
async def add_meter(
    body: MeterIn, response: Response, parts: Parts, principal: CurrentPrincipal
) -> MeterOut:
    """Add a meter. Posting an existing key updates its unit and description; its aggregation
    may change only while it has no data (a new key is the way once it has)."""
    principal.require_platform_admin()
    async with parts.db.unscoped_transaction() as session:
        meter, has_data, created = await meter_admin.save_meter(session, body.to_meter())
    parts.meters.put(meter)
    if not created:
        response.status_code = status.HTTP_200_OK
    return MeterOut.of(meter, has_data)
