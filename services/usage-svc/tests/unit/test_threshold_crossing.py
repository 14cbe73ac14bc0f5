"""Which period totals crossed which share of their plan's limit (``quotas.find_crossings``),
and the alert each crossing announces."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import pytest

from stellara_contracts.events import TenantSnapshot, TenantStatus
from stellara_kit.outbox import EventSink
from stellara_kit.tenant_directory import TenantDirectory
from usage_svc.ingest.quotas import alert_event, find_crossings, unique_meter_keys
from usage_svc.ingest.repository import PeriodTotals
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.meters import Aggregation, Meter, Totals
from usage_svc.plans import BUILTIN_PLANS, Plan

TENANT = UUID("44444444-4444-4444-8444-444444444444")
PERIOD = date(2026, 12, 1)
THRESHOLDS = (80, 100)
# plan "tiny": 100 api_calls (soft), a peak of 10 active_users (hard), 5 distinct seats
TINY = Plan.model_validate(
    {
        "key": "tiny",
        "name": "Tiny",
        "base_fee": "1.00",
        "metrics": {
            "api_calls": {"limit": 100},
            "active_users": {"limit": 10, "limit_kind": "hard"},
            "seats": {"limit": 5},
            "transactions": {"included": 10},  # priced, not limited
        },
    }
)
PLANS = {**BUILTIN_PLANS, "tiny": TINY}


def directory(plan: str = "tiny") -> TenantDirectory:
    tenants = TenantDirectory("unused:9092")
    at = datetime(2026, 11, 1, tzinfo=UTC)
    tenants.apply(
        TenantSnapshot(
            tenant_id=TENANT,
            slug="acme",
            name="Acme",
            plan=plan,
            status=TenantStatus.ACTIVE,
            version=1,
            created_at=at,
            updated_at=at,
        )
    )
    return tenants


def meters() -> MeterCatalogue:
    catalogue = MeterCatalogue(None)
    catalogue.put(Meter("seats", Aggregation.UNIQUE_COUNT, "seats", unique_property="user"))
    return catalogue


def crossed(
    metric: str,
    totals: Totals,
    *,
    plan: str = "tiny",
    unique: int = 0,
    already_fired: set[Any] | None = None,
    tenant: UUID = TENANT,
) -> list[tuple[int, float, float]]:
    """(threshold, limit, value) of each crossing of one tenant's period total."""
    crossings = find_crossings(
        [PeriodTotals(tenant, metric, PERIOD, totals)],
        directory=directory(plan),
        plans=PLANS,
        meters=meters(),
        thresholds=THRESHOLDS,
        unique_counts={(tenant, metric): unique},
        already_fired=already_fired or set(),
    )
    return [(c.row.threshold, c.row.limit, c.row.value) for c in crossings]


@pytest.mark.parametrize(
    ("metric", "totals", "expected"),
    [
        pytest.param("api_calls", Totals(sum=0), [], id="nothing used"),
        pytest.param("api_calls", Totals(sum=79.9), [], id="just below 80 %"),
        pytest.param("api_calls", Totals(sum=80), [(80, 100.0, 80.0)], id="exactly 80 %"),
        pytest.param("api_calls", Totals(sum=99), [(80, 100.0, 99.0)], id="between"),
        pytest.param(
            "api_calls", Totals(sum=100), [(80, 100.0, 100.0)], id="at the limit: within it"
        ),
        pytest.param(
            "api_calls",
            Totals(sum=100.5),
            [(80, 100.0, 100.5), (100, 100.0, 100.5)],
            id="beyond the limit: exceeded",
        ),
        pytest.param(
            "api_calls",
            Totals(sum=10_000),
            [(80, 100.0, 10_000.0), (100, 100.0, 10_000.0)],
            id="far beyond: each threshold once",
        ),
        # a gauge crosses by its peak, not by the sum of its readings
        pytest.param(
            "active_users", Totals(sum=60, count=6, max=9), [(80, 10.0, 9.0)], id="gauge peak 9"
        ),
        pytest.param(
            "active_users", Totals(sum=400, count=40, max=7), [], id="gauge sum is not its value"
        ),
        pytest.param(
            "active_users",
            Totals(sum=11, count=1, max=11),
            [(80, 10.0, 11.0), (100, 10.0, 11.0)],
            id="gauge beyond",
        ),
        pytest.param("transactions", Totals(sum=10**9), [], id="a metric the plan does not limit"),
        pytest.param("storage_bytes", Totals(max=10**12), [], id="a metric the plan does not name"),
        pytest.param("teleports", Totals(sum=10**9), [], id="a metric outside the catalogue"),
    ],
)
def test_crossings_of_a_period_total(
    metric: str, totals: Totals, expected: list[tuple[int, float, float]]
) -> None:
    assert crossed(metric, totals) == expected


@pytest.mark.parametrize(
    ("unique", "expected"),
    [
        pytest.param(3, [], id="3 of 5"),
        pytest.param(4, [(80, 5.0, 4.0)], id="4 of 5"),
        pytest.param(5, [(80, 5.0, 5.0)], id="5 of 5"),
        pytest.param(6, [(80, 5.0, 6.0), (100, 5.0, 6.0)], id="6 of 5"),
    ],
)
def test_a_distinct_count_crosses_by_its_distinct_values(
    unique: int, expected: list[tuple[int, float, float]]
) -> None:
    # the hourly figures' sum is no distinct count: only the value sets' count matters
    assert crossed("seats", Totals(sum=1000, count=1000), unique=unique) == expected


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        pytest.param("free", [(80, 10_000.0, 9_000.0)], id="free: 10,000 calls"),
        pytest.param("starter", [], id="starter: 500,000 calls"),
        pytest.param("enterprise", [], id="enterprise: unlimited"),
        pytest.param("gone", [], id="a plan missing from the catalogue"),
    ],
)
def test_the_tenants_plan_sets_the_limit(
    plan: str, expected: list[tuple[int, float, float]]
) -> None:
    assert crossed("api_calls", Totals(sum=9_000), plan=plan) == expected


def test_an_unknown_tenant_crosses_nothing() -> None:
    assert crossed("api_calls", Totals(sum=10**6), tenant=UUID(int=1)) == []


def test_a_threshold_already_fired_is_not_crossed_again() -> None:
    fired = {(TENANT, "api_calls", PERIOD, 80)}
    assert crossed("api_calls", Totals(sum=150), already_fired=fired) == [(100, 100.0, 150.0)]


def test_only_distinct_count_meters_need_their_value_sets_counted() -> None:
    periods = [
        PeriodTotals(TENANT, m, PERIOD, Totals()) for m in ("api_calls", "seats", "teleports")
    ]
    assert [p.metric for p in unique_meter_keys(periods, meters())] == ["seats"]


@pytest.mark.parametrize(
    ("metric", "totals", "expected"),
    [
        pytest.param(
            "api_calls",
            Totals(sum=90),
            [("stellara.usage.threshold_reached.v1", {"threshold_percent": 80})],
            id="80 %: threshold reached",
        ),
        pytest.param(
            "api_calls",
            Totals(sum=120),
            [
                ("stellara.usage.threshold_reached.v1", {"threshold_percent": 80}),
                ("stellara.usage.quota_exceeded.v1", {"limit_kind": "soft"}),
            ],
            id="soft limit exceeded",
        ),
        pytest.param(
            "active_users",
            Totals(max=12),
            [
                ("stellara.usage.threshold_reached.v1", {"threshold_percent": 80}),
                ("stellara.usage.quota_exceeded.v1", {"limit_kind": "hard"}),
            ],
            id="hard limit exceeded",
        ),
    ],
)
def test_each_crossing_announces_its_alert(
    metric: str, totals: Totals, expected: list[tuple[str, dict[str, Any]]]
) -> None:
    crossings = find_crossings(
        [PeriodTotals(TENANT, metric, PERIOD, totals)],
        directory=directory(),
        plans=PLANS,
        meters=meters(),
        thresholds=THRESHOLDS,
        unique_counts={},
        already_fired=set(),
    )
    sink = EventSink(None, source="usage-svc")  # type: ignore[arg-type]
    events = [alert_event(c, sink) for c in crossings]
    assert len(events) == len(expected)
    for alert, crossing, (kind, fields) in zip(events, crossings, expected, strict=True):
        assert alert.type == kind
        assert alert.id == crossing.row.event_id  # the recorded row's id: announced once
        data = alert.data.model_dump(mode="json")
        assert data["tenant_id"] == str(TENANT)
        assert (data["period_start"], data["period_end"]) == ("2026-12-01", "2027-01-01")
        assert data["plan"] == "tiny"
        assert fields.items() <= data.items()
