"""HTTP request and response models (not events)."""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stellara_contracts.envelope import PlainDecimal
from stellara_contracts.events import LineItem
from stellara_contracts.patterns import METER_KEY_PATTERN
from usage_svc.meters import Aggregation, Meter

_TENANT = "5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11"


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# --------------------------------------------------------------------- usage
class MetricUsage(_Out):
    metric: str = Field(examples=["api_calls"])
    aggregation: Aggregation = Field(examples=["SUM"])
    unit: str = Field(examples=["calls"])
    value: float = Field(description="The value under the meter's aggregation.", examples=[1234])
    events: int = Field(description="Events recorded in the range.", examples=[1200])
    daily_average: float = Field(
        description="SUM/COUNT: value / days in the range; others: mean of the days with data.",
        examples=[41.13],
    )
    peak_day: date | None = Field(
        description="The day with the highest value.", examples=["2026-12-03"]
    )
    peak_value: float | None = Field(examples=[220])


class UsageSummary(_Out):
    tenant_id: UUID = Field(examples=[_TENANT])
    start: datetime = Field(alias="from", description="First hour included (UTC).")
    end: datetime = Field(alias="to", description="End of the range, exclusive (UTC).")
    tz: str = Field(description="Time zone the days are counted in.", examples=["UTC"])
    metrics: list[MetricUsage]

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)


class UsagePoint(_Out):
    date: dt.date = Field(description="Local date the bucket starts on.", examples=["2026-12-01"])
    start: datetime = Field(
        description="The bucket's first instant, with the time zone's offset.",
        examples=["2026-12-01T00:00:00+01:00"],
    )
    metric: str = Field(examples=["api_calls"])
    value: float = Field(examples=[120])
    events: int = Field(examples=[118])


class UsageSeries(_Out):
    tenant_id: UUID = Field(examples=[_TENANT])
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    tz: str = Field(examples=["Europe/Berlin"])
    window: Literal["hour", "day", "month"] = Field(examples=["day"])
    rows: list[UsagePoint]

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)


class TrendDay(_Out):
    date: dt.date = Field(examples=["2026-12-07"])
    value: float = Field(examples=[130])
    moving_average: float = Field(description="Trailing 7-day mean.", examples=[121.4])


class TrendWindow(_Out):
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    value: float = Field(examples=[850])

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)


class UsageProjection(_Out):
    period_start: date = Field(examples=["2026-12-01"])
    period_end: date = Field(description="Exclusive.", examples=["2027-01-01"])
    to_date: float = Field(description="Value so far in the billing period.", examples=[900])
    projected: float = Field(
        description="SUM/COUNT: to date + recent daily rate × days left; others: to date.",
        examples=[3800],
    )
    limit: float | None = Field(description="The plan's limit, if any.", examples=[10000])
    percent_of_limit: float | None = Field(examples=[38.0])


class MetricTrendOut(_Out):
    metric: str = Field(examples=["api_calls"])
    aggregation: Aggregation = Field(examples=["SUM"])
    unit: str = Field(examples=["calls"])
    period: Literal["7d", "30d"] = Field(examples=["7d"])
    current: TrendWindow
    previous: TrendWindow
    change: float = Field(description="current − previous.", examples=[120])
    change_percent: float | None = Field(
        description="Change against the previous period (null when that was 0).", examples=[16.4]
    )
    moving_average: float = Field(description="Trailing 7-day mean, as of today.", examples=[121.4])
    days: list[TrendDay]
    projection: UsageProjection


class UsageTrends(_Out):
    tenant_id: UUID = Field(examples=[_TENANT])
    as_of: datetime
    metrics: list[MetricTrendOut]


class InvoicePreview(_Out):
    tenant_id: UUID = Field(examples=[_TENANT])
    plan: str = Field(examples=["starter"])
    currency: str = Field(examples=["USD"])
    period_start: date = Field(examples=["2026-12-01"])
    period_end: date = Field(description="Exclusive.", examples=["2027-01-01"])
    as_of: datetime
    base_fee: PlainDecimal = Field(examples=["49.00"])
    line_items: list[LineItem]
    total: PlainDecimal = Field(examples=["53.00"])


# --------------------------------------------------------------------- meters
class MeterOut(_Out):
    key: str = Field(examples=["api_calls"])
    aggregation: Aggregation = Field(examples=["SUM"])
    unit: str = Field(examples=["calls"])
    description: str = Field(examples=["API requests a tenant made."])
    unique_property: str | None = Field(
        default=None, description="UNIQUE_COUNT only: the property counted.", examples=[None]
    )
    has_data: bool = Field(
        description="Once true, the aggregation can no longer change.", examples=[True]
    )

    @classmethod
    def of(cls, meter: Meter, has_data: bool) -> MeterOut:
        return cls(
            key=meter.key,
            aggregation=meter.aggregation,
            unit=meter.unit,
            description=meter.description,
            unique_property=meter.unique_property,
            has_data=has_data,
        )


class MeterIn(BaseModel):
    """A meter to add (or, while it has no data, to redefine)."""

    model_config = ConfigDict(
        extra="forbid",
        # the rule `_property_iff_unique` enforces, as JSON Schema says it
        json_schema_extra={
            "if": {
                "properties": {"aggregation": {"const": "UNIQUE_COUNT"}},
                "required": ["aggregation"],
            },
            "then": {
                "required": ["unique_property"],
                "properties": {"unique_property": {"type": "string"}},
            },
            "else": {"properties": {"unique_property": {"type": "null"}}},
        },
    )

    key: str = Field(pattern=METER_KEY_PATTERN, examples=["unique_visitors"])
    aggregation: Aggregation = Field(examples=["UNIQUE_COUNT"])
    unit: str = Field(min_length=1, max_length=50, examples=["visitors"])
    description: str = Field(default="", max_length=500, examples=["Distinct visitors."])
    unique_property: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Required for UNIQUE_COUNT: the event property whose distinct values count.",
        examples=["user_id"],
    )

    @model_validator(mode="after")
    def _property_iff_unique(self) -> MeterIn:
        if (self.aggregation == Aggregation.UNIQUE_COUNT) != (self.unique_property is not None):
            raise ValueError("unique_property is required for UNIQUE_COUNT and only for it")
        return self

    def to_meter(self) -> Meter:
        return Meter(
            key=self.key,
            aggregation=self.aggregation,
            unit=self.unit,
            description=self.description,
            unique_property=self.unique_property,
        )


class MeterList(_Out):
    items: list[MeterOut]


# --------------------------------------------------------------------- OpenAPI examples
# Built from the models themselves, so an example can never drift from its schema.
def _dump(model: BaseModel) -> Any:
    return model.model_dump(mode="json", by_alias=True)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


EXAMPLE_TENANT = UUID(_TENANT)

USAGE_SUMMARY_EXAMPLE = _dump(
    UsageSummary(
        tenant_id=EXAMPLE_TENANT,
        start=_at("2026-12-01T00:00:00+00:00"),
        end=_at("2026-12-08T00:00:00+00:00"),
        tz="UTC",
        metrics=[
            MetricUsage(
                metric="api_calls",
                aggregation=Aggregation.SUM,
                unit="calls",
                value=1234,
                events=1200,
                daily_average=176.285714,
                peak_day=date(2026, 12, 3),
                peak_value=220,
            ),
            MetricUsage(
                metric="storage_bytes",
                aggregation=Aggregation.MAX,
                unit="bytes",
                value=5_368_709_120,
                events=168,
                daily_average=5_100_000_000,
                peak_day=date(2026, 12, 7),
                peak_value=5_368_709_120,
            ),
        ],
    )
)
USAGE_SUMMARY_CSV = (
    "metric,aggregation,unit,value,events,daily_average,peak_day,peak_value\n"
    "api_calls,SUM,calls,1234,1200,176.285714,2026-12-03,220\n"
    "storage_bytes,MAX,bytes,5368709120,168,5100000000,2026-12-07,5368709120\n"
)

USAGE_SERIES_EXAMPLE = _dump(
    UsageSeries(
        tenant_id=EXAMPLE_TENANT,
        start=_at("2026-10-24T22:00:00+00:00"),
        end=_at("2026-10-26T23:00:00+00:00"),
        tz="Europe/Berlin",
        window="day",
        rows=[
            UsagePoint(
                date=date(2026, 10, 25),
                start=_at("2026-10-25T00:00:00+02:00"),
                metric="api_calls",
                value=120,
                events=118,
            ),
            UsagePoint(
                date=date(2026, 10, 26),
                start=_at("2026-10-26T00:00:00+01:00"),
                metric="api_calls",
                value=0,
                events=0,
            ),
        ],
    )
)
USAGE_SERIES_CSV = (
    "date,start,metric,value,events\n"
    "2026-10-25,2026-10-25T00:00:00+02:00,api_calls,120,118\n"
    "2026-10-26,2026-10-26T00:00:00+01:00,api_calls,0,0\n"
)

USAGE_TRENDS_EXAMPLE = _dump(
    UsageTrends(
        tenant_id=EXAMPLE_TENANT,
        as_of=_at("2026-12-08T09:30:00+00:00"),
        metrics=[
            MetricTrendOut(
                metric="api_calls",
                aggregation=Aggregation.SUM,
                unit="calls",
                period="7d",
                current=TrendWindow(
                    start=_at("2026-12-01T10:00:00+00:00"),
                    end=_at("2026-12-08T10:00:00+00:00"),
                    value=850,
                ),
                previous=TrendWindow(
                    start=_at("2026-11-24T10:00:00+00:00"),
                    end=_at("2026-12-01T10:00:00+00:00"),
                    value=730,
                ),
                change=120,
                change_percent=16.44,
                moving_average=121.43,
                days=[TrendDay(date=date(2026, 12, 8), value=130, moving_average=121.43)],
                projection=UsageProjection(
                    period_start=date(2026, 12, 1),
                    period_end=date(2027, 1, 1),
                    to_date=900,
                    projected=3800,
                    limit=500_000,
                    percent_of_limit=0.76,
                ),
            )
        ],
    )
)
USAGE_TRENDS_CSV = "metric,date,value,moving_average\napi_calls,2026-12-08,130,121.43\n"

INVOICE_PREVIEW_EXAMPLE = _dump(
    InvoicePreview(
        tenant_id=EXAMPLE_TENANT,
        plan="starter",
        currency="USD",
        period_start=date(2026, 12, 1),
        period_end=date(2027, 1, 1),
        as_of=_at("2026-12-08T09:30:00+00:00"),
        base_fee=Decimal("49.00"),
        line_items=[
            LineItem(
                metric="api_calls",
                quantity=Decimal(120_000),
                included=Decimal(100_000),
                overage=Decimal(20_000),
                unit_price=Decimal("0.0002"),
                amount=Decimal("4.00"),
            )
        ],
        total=Decimal("53.00"),
    )
)
INVOICE_PREVIEW_CSV = (
    "metric,quantity,included,overage,unit_price,amount\n"
    "api_calls,120000,100000,20000,0.0002,4.00\n"
)

METER_LIST_EXAMPLE = _dump(
    MeterList(
        items=[
            MeterOut(
                key="api_calls",
                aggregation=Aggregation.SUM,
                unit="calls",
                description="API requests a tenant made (from the gateway).",
                has_data=True,
            ),
            MeterOut(
                key="unique_visitors",
                aggregation=Aggregation.UNIQUE_COUNT,
                unit="visitors",
                description="Distinct visitors.",
                unique_property="user_id",
                has_data=False,
            ),
        ]
    )
)
