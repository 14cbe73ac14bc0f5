"""Property: any stream of usage events, duplicated and shuffled, adds up like a plain model.

One service runs for the module; every example gets a tenant of its own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import RunningService
from .helpers import headers, produce_usage, record, usage_of, wait_for_events

#: metric → aggregation; the last four are added to the catalogue for this module
METERS = {
    "api_calls": "SUM",
    "storage_bytes": "MAX",
    "logins": "COUNT",
    "latency_ms": "AVG",
    "temperature_c": "MIN",
    "queue_depth": "LATEST",
}
DAYS = 5


@dataclass(frozen=True)
class Event:
    event_id: UUID
    metric: str
    value: int
    occurred_at: datetime


def fold(aggregation: str, events: list[Event]) -> float:
    values = [e.value for e in events]
    if aggregation == "SUM":
        return sum(values)
    if aggregation == "COUNT":
        return len(values)
    if aggregation == "MAX":
        return max(values)
    if aggregation == "MIN":
        return min(values)
    if aggregation == "AVG":
        return sum(values) / len(values)
    assert aggregation == "LATEST"
    return max(events, key=lambda e: (e.occurred_at, e.value)).value


def model(events: list[Event]) -> dict[str, tuple[float, int]]:
    """(value, events) per metric, folded the plain way from the distinct events."""
    by_metric: dict[str, list[Event]] = defaultdict(list)
    for event in {e.event_id: e for e in events}.values():
        by_metric[event.metric].append(event)
    out: dict[str, tuple[float, int]] = {}
    for metric, aggregation in METERS.items():
        seen = by_metric.get(metric, [])
        if not seen:
            out[metric] = (0, 0)
            continue
        value = fold(aggregation, seen)
        out[metric] = (value, len(seen))
    return out


def daily_sums(events: list[Event], metric: str) -> dict[str, float]:
    days: dict[str, float] = defaultdict(float)
    for event in {e.event_id: e for e in events}.values():
        if event.metric == metric:
            days[event.occurred_at.date().isoformat()] += event.value
    return dict(days)


measurements = st.lists(
    st.tuples(
        st.sampled_from(sorted(METERS)),
        st.integers(min_value=0, max_value=1000),
        st.integers(min_value=1, max_value=DAYS * 24 * 60),  # minutes ago
    ),
    min_size=1,
    max_size=30,
)


@pytest_asyncio.fixture(scope="module")
async def meters(service: RunningService) -> None:
    for key, aggregation in METERS.items():
        meter = {"key": key, "aggregation": aggregation, "unit": "units"}
        response = await service.http.post("/meters", json=meter, headers=headers(service.settings))
        assert response.status_code in (200, 201), response.text


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(measured=measurements, data=st.data())
async def test_duplicated_shuffled_streams_add_up_like_the_model(
    service: RunningService, meters: None, measured: list[tuple[str, int, int]], data: Any
) -> None:
    tenant = (await service.new_tenant(plan="enterprise")).tenant_id
    now = datetime.now(UTC).replace(microsecond=0)
    events = [
        Event(uuid4(), metric, value, now - timedelta(minutes=ago))
        for metric, value, ago in measured
    ]
    copies = data.draw(st.lists(st.sampled_from(events), max_size=len(events)), label="copies")
    stream = data.draw(st.permutations([*events, *copies]), label="stream")

    await produce_usage(
        service.settings,
        [
            record(tenant, e.metric, e.value, occurred_at=e.occurred_at, event_id=e.event_id)
            for e in stream
        ]
        # the same partition, after everything else: once it counts, the stream is in
        + [record(tenant, "workflow_runs", 1)],
    )
    start = (now - timedelta(days=DAYS + 1)).date().isoformat()
    await wait_for_events(service.http, service.settings, tenant, "workflow_runs", 1, start=start)

    usage = await usage_of(service.http, service.settings, tenant, start=start)
    assert {m: (usage[m]["value"], usage[m]["events"]) for m in METERS} == model(stream)
    response = await service.http.get(
        f"/tenants/{tenant}/usage/daily",
        params={"from": start, "metric": "api_calls"},
        headers=headers(service.settings, tenant),
    )
    assert response.status_code == 200, response.text
    days = {row["date"]: row["value"] for row in response.json()["rows"] if row["events"]}
    assert days == daily_sums(stream, "api_calls")
