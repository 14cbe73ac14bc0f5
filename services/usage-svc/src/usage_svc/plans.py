"""The plan catalogue (data, not code) and rating: billing periods, included units, overage.

A plan names a base fee and, per metric, the units included in the period, the
price of each unit beyond them, and an optional limit (soft: alert only; hard:
the platform is told to stop the tenant). The built-in catalogue below can be
replaced key by key from a JSON or YAML file (``USAGE_SVC_PLANS_FILE``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stellara_contracts.envelope import PlainDecimal
from stellara_contracts.events import LineItem

CENT = Decimal("0.01")


class MetricTerms(BaseModel):
    """What a plan says about one metric."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    included: PlainDecimal = Field(
        default=Decimal(0), ge=0, description="Units included in the base fee per period."
    )
    unit_price: PlainDecimal = Field(
        default=Decimal(0), ge=0, description="Price of each unit beyond the included ones."
    )
    limit: PlainDecimal | None = Field(
        default=None, gt=0, description="Usage limit per period (none: unlimited)."
    )
    limit_kind: Literal["soft", "hard"] = Field(
        default="soft", description="soft: alerts only; hard: the tenant is to be stopped."
    )


class Plan(BaseModel):
    """A plan of the catalogue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$", examples=["starter"])
    name: str = Field(min_length=1, max_length=200, examples=["Starter"])
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", examples=["USD"])
    base_fee: PlainDecimal = Field(ge=0, description="Fee per period.", examples=["49.00"])
    billing_period: Literal["month"] = Field(default="month", description="Calendar month (UTC).")
    metrics: dict[str, MetricTerms] = Field(default_factory=dict)

    def terms(self, metric: str) -> MetricTerms | None:
        return self.metrics.get(metric)

    def limit(self, metric: str) -> MetricTerms | None:
        """The metric's terms when the plan limits it."""
        terms = self.metrics.get(metric)
        return terms if terms is not None and terms.limit is not None else None


def _plan(key: str, name: str, base_fee: str, metrics: dict[str, dict[str, Any]]) -> Plan:
    return Plan.model_validate({"key": key, "name": name, "base_fee": base_fee, "metrics": metrics})


GB = 1_000_000_000

#: the built-in catalogue: prices per meter unit (storage per byte of the period's peak)
BUILTIN_PLANS: dict[str, Plan] = {
    plan.key: plan
    for plan in (
        _plan(
            "free",
            "Free",
            "0.00",
            {
                "api_calls": {"included": 10_000, "limit": 10_000, "limit_kind": "hard"},
                "storage_bytes": {"included": GB, "limit": GB, "limit_kind": "hard"},
                "active_users": {"included": 3, "limit": 3, "limit_kind": "hard"},
                "transactions": {"included": 1_000, "limit": 1_000, "limit_kind": "hard"},
                "workflow_runs": {"included": 100, "limit": 100, "limit_kind": "hard"},
            },
        ),
        _plan(
            "starter",
            "Starter",
            "49.00",
            {
                "api_calls": {"included": 100_000, "unit_price": "0.0002", "limit": 500_000},
                "storage_bytes": {
                    "included": 10 * GB,
                    "unit_price": "0.000000002",
                    "limit": 50 * GB,
                },
                "active_users": {"included": 10, "unit_price": "5.00", "limit": 50},
                "transactions": {"included": 10_000, "unit_price": "0.01", "limit": 50_000},
                "workflow_runs": {
                    "included": 1_000,
                    "unit_price": "0.05",
                    "limit": 5_000,
                    "limit_kind": "hard",
                },
            },
        ),
        _plan(
            "pro",
            "Pro",
            "199.00",
            {
                "api_calls": {"included": 1_000_000, "unit_price": "0.0001", "limit": 10_000_000},
                "storage_bytes": {
                    "included": 100 * GB,
                    "unit_price": "0.000000001",
                    "limit": 1000 * GB,
                },
                "active_users": {"included": 50, "unit_price": "4.00", "limit": 500},
                "transactions": {"included": 100_000, "unit_price": "0.005", "limit": 1_000_000},
                "workflow_runs": {"included": 10_000, "unit_price": "0.02", "limit": 100_000},
            },
        ),
        _plan(
            "enterprise",
            "Enterprise",
            "999.00",
            {
                "api_calls": {"included": 20_000_000, "unit_price": "0.00005"},
                "storage_bytes": {"included": 2000 * GB, "unit_price": "0.0000000005"},
                "active_users": {"included": 1000, "unit_price": "3.00"},
                "transactions": {"included": 5_000_000, "unit_price": "0.002"},
                "workflow_runs": {"included": 500_000, "unit_price": "0.01"},
            },
        ),
    )
}


def load_plans_file(path: Path) -> dict[str, Plan]:
    """Plans from a JSON or YAML file: ``{plan_key: {name, base_fee, metrics: {...}}}``."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        raw = yaml.safe_load(text)
    else:
        raw = json.loads(text)
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected an object of plan key → plan")
    plans = raw.get("plans", raw)
    return {key: Plan.model_validate({"key": key, **dict(body)}) for key, body in plans.items()}


# --------------------------------------------------------------------- billing periods
@dataclass(frozen=True)
class Period:
    """A billing period ``[start, end)`` (dates, UTC)."""

    start: date
    end: date

    @property
    def start_at(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def end_at(self) -> datetime:
        return datetime(self.end.year, self.end.month, self.end.day, tzinfo=UTC)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def previous(self) -> Period:
        last_day = date.fromordinal(self.start.toordinal() - 1)
        return month_of(last_day)


def month_of(day: date) -> Period:
    start = date(day.year, day.month, 1)
    end = date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)
    return Period(start, end)


def period_of(plan: Plan | None, instant: datetime) -> Period:
    """The billing period holding ``instant`` (every plan bills by calendar month, UTC)."""
    return month_of(instant.astimezone(UTC).date())


# --------------------------------------------------------------------- rating
def to_decimal(value: float) -> Decimal:
    """A measured quantity as a decimal without binary noise (``0.1 + 0.2`` → ``0.3``)."""
    return Decimal(repr(round(value, 9))).normalize() if value else Decimal(0)


@dataclass(frozen=True)
class Rating:
    line_items: list[LineItem]
    base_fee: Decimal
    total: Decimal


def rate(plan: Plan, quantities: Mapping[str, float]) -> Rating:
    """Line items for the plan's metrics and any other metric with usage (unpriced)."""
    items = []
    for metric in sorted(set(plan.metrics) | set(quantities)):
        terms = plan.metrics.get(metric) or MetricTerms()
        quantity = to_decimal(quantities.get(metric, 0.0))
        overage = max(Decimal(0), quantity - terms.included)
        amount = (overage * terms.unit_price).quantize(CENT, rounding=ROUND_HALF_UP)
        items.append(
            LineItem(
                metric=metric,
                quantity=quantity,
                included=terms.included,
                overage=overage,
                unit_price=terms.unit_price,
                amount=amount,
            )
        )
    base_fee = plan.base_fee.quantize(CENT, rounding=ROUND_HALF_UP)
    total = base_fee + sum((item.amount for item in items), Decimal(0))
    return Rating(line_items=items, base_fee=base_fee, total=total)
