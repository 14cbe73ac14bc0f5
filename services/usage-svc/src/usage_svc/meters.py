"""Meters: what a metric key means — how its events aggregate, in which unit.

Every aggregation is derived from the same folded figures per hour (sum,
count, min, max, last value by ``occurred_at``), except UNIQUE_COUNT, which
counts distinct values of one event property from its own per-hour value sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Aggregation(StrEnum):
    SUM = "SUM"
    COUNT = "COUNT"
    MAX = "MAX"
    MIN = "MIN"
    AVG = "AVG"
    LATEST = "LATEST"
    UNIQUE_COUNT = "UNIQUE_COUNT"


#: aggregations whose events are counts of something: a negative value is a bad record
COUNTERS = frozenset({Aggregation.SUM, Aggregation.COUNT})
#: aggregations whose value over a range is the sum of the values over its parts
ADDITIVE = frozenset({Aggregation.SUM, Aggregation.COUNT})


@dataclass(frozen=True)
class Meter:
    key: str
    aggregation: Aggregation
    unit: str
    description: str = ""
    unique_property: str | None = None

    @property
    def is_counter(self) -> bool:
        return self.aggregation in COUNTERS

    @property
    def is_additive(self) -> bool:
        return self.aggregation in ADDITIVE


DEFAULT_METERS: tuple[Meter, ...] = (
    Meter("api_calls", Aggregation.SUM, "calls", "API requests a tenant made (from the gateway)."),
    Meter("storage_bytes", Aggregation.MAX, "bytes", "Stored bytes; the period's peak is billed."),
    Meter(
        "active_users",
        Aggregation.MAX,
        "users",
        "Members of the tenant (follows MemberAdded/MemberRemoved); the period's peak is billed.",
    ),
    Meter("transactions", Aggregation.SUM, "transactions", "Business transactions processed."),
    Meter("workflow_runs", Aggregation.SUM, "runs", "Workflow executions started."),
)


def fallback_meter(metric: str) -> Meter:
    """How a metric outside the catalogue aggregates when unknown metrics are allowed."""
    return Meter(metric, Aggregation.SUM, "units", "Not in the meter catalogue.")


@dataclass(frozen=True)
class Totals:
    """Folded figures of one metric over some span of hours."""

    sum: float = 0.0
    count: int = 0
    min: float | None = None
    max: float | None = None
    last_value: float | None = None
    last_at: datetime | None = None
    unique: int | None = None

    def value(self, meter: Meter) -> float:
        """The figure under the meter's aggregation (0 when nothing was recorded)."""
        match meter.aggregation:
            case Aggregation.SUM:
                return self.sum
            case Aggregation.COUNT:
                return float(self.count)
            case Aggregation.MAX:
                return self.max if self.max is not None else 0.0
            case Aggregation.MIN:
                return self.min if self.min is not None else 0.0
            case Aggregation.AVG:
                return self.sum / self.count if self.count else 0.0
            case Aggregation.LATEST:
                return self.last_value if self.last_value is not None else 0.0
            case Aggregation.UNIQUE_COUNT:
                return float(self.unique or 0)
        raise AssertionError(meter.aggregation)
