"""Usage queries: per-metric figures, days in a time zone, trends, CSV, and bad parameters."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from usage_svc.plans import month_of

from .conftest import RunningService
from .helpers import headers, produce_usage, record, usage_of, wait_for_events

#: the daylight-saving and 30-day cases need events from up to a year back
SERVICE_SETTINGS = {"dedup_window_days": 400}

BERLIN = "Europe/Berlin"


async def read(
    service: RunningService,
    tenant: UUID,
    path: str = "",
    accept: str | None = None,
    **params: Any,
) -> httpx.Response:
    query = {("from" if k == "start" else k): v for k, v in params.items()}
    sent = headers(service.settings, tenant)
    if accept:
        sent["accept"] = accept
    return await service.http.get(f"/tenants/{tenant}/usage{path}", params=query, headers=sent)


async def ingest(
    service: RunningService,
    tenant: UUID,
    events: Sequence[tuple[str, float, datetime]],
    **properties_by_index: dict[str, str],
) -> None:
    """Produce ``(metric, value, occurred_at)`` events and wait until all of them count."""
    records = [
        record(tenant, metric, value, occurred_at=at, properties=properties_by_index.get(f"e{i}"))
        for i, (metric, value, at) in enumerate(events)
    ]
    # the sentinel is produced after the events, on the tenant's partition: once it counts, they
    # do; a tenant ingested into before already counts earlier sentinels, so wait for one more
    before = (await usage_of(service.http, service.settings, tenant)).get("workflow_runs", {})
    sentinel = datetime.now(UTC) - timedelta(minutes=1)
    await produce_usage(
        service.settings, [*records, record(tenant, "workflow_runs", 1, occurred_at=sentinel)]
    )
    await wait_for_events(
        service.http, service.settings, tenant, "workflow_runs", before.get("events", 0) + 1
    )


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def rows_of(response: httpx.Response, metric: str = "api_calls") -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {r["date"]: r for r in response.json()["rows"] if r["metric"] == metric}


def by_metric(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {m["metric"]: m for m in response.json()["metrics"]}


def end_of_summer_time(today: date) -> date:
    """The last Sunday of October of the latest October that is fully past."""
    year = today.year if today >= date(today.year, 11, 2) else today.year - 1
    last = date(year, 10, 31)
    return last - timedelta(days=(last.weekday() - 6) % 7)


# --------------------------------------------------------------------- summary
class TestSummary:
    async def test_value_events_daily_average_and_peak_day_per_metric(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant()).tenant_id
        base = datetime.now(UTC).date() - timedelta(days=10)
        d1, d2, d3 = (base + timedelta(days=n) for n in (1, 2, 3))
        await ingest(
            service,
            tenant,
            [
                ("api_calls", 10, at(d1, 10)),
                ("api_calls", 20, at(d1, 12)),
                ("api_calls", 50, at(d3, 8)),
                ("api_calls", 1000, at(base + timedelta(days=6), 8)),  # after the range
                ("storage_bytes", 500, at(d1, 9)),
                ("storage_bytes", 700, at(d2, 9)),
                ("storage_bytes", 300, at(d3, 9)),
            ],
        )

        usage = by_metric(
            await read(
                service, tenant, start=base.isoformat(), to=(base + timedelta(days=4)).isoformat()
            )
        )
        calls, storage = usage["api_calls"], usage["storage_bytes"]
        # SUM over five days: the average spreads the total over every day of the range
        assert (calls["value"], calls["events"], calls["daily_average"]) == (80, 3, 16)
        assert (calls["peak_day"], calls["peak_value"]) == (d3.isoformat(), 50)
        # MAX: the largest reading; the average is over the days that have readings
        assert (storage["value"], storage["events"], storage["daily_average"]) == (700, 3, 500)
        assert (storage["peak_day"], storage["peak_value"]) == (d2.isoformat(), 700)
        assert (usage["transactions"]["value"], usage["transactions"]["peak_day"]) == (0, None)

    async def test_every_aggregation_of_the_meter_catalogue(self, service: RunningService) -> None:
        admin = headers(service.settings)
        for key, aggregation, extra in (
            ("logins", "COUNT", {}),
            ("latency_ms", "AVG", {}),
            ("temperature_c", "MIN", {}),
            ("queue_depth", "LATEST", {}),
            ("visitors", "UNIQUE_COUNT", {"unique_property": "user"}),
        ):
            meter = {"key": key, "aggregation": aggregation, "unit": "units", **extra}
            added = await service.http.post("/meters", json=meter, headers=admin)
            assert added.status_code in (200, 201), added.text
        tenant = (await service.new_tenant()).tenant_id
        day = datetime.now(UTC).date() - timedelta(days=3)
        await ingest(
            service,
            tenant,
            [
                ("logins", 5, at(day, 1)),
                ("logins", 7, at(day, 2)),
                ("logins", 9, at(day, 3)),
                ("latency_ms", 10, at(day, 1)),
                ("latency_ms", 20, at(day, 2)),
                ("latency_ms", 60, at(day, 3)),
                ("temperature_c", 3, at(day, 1)),
                ("temperature_c", -2, at(day, 2)),
                ("temperature_c", 5, at(day, 3)),
                ("queue_depth", 9, at(day, 2)),
                ("queue_depth", 4, at(day, 3)),  # the newest reading
                ("queue_depth", 5, at(day, 1)),
                ("visitors", 1, at(day, 1)),
                ("visitors", 1, at(day, 2)),
                ("visitors", 1, at(day, 3)),
            ],
            e12={"user": "ada"},
            e13={"user": "grace"},
            e14={"user": "ada"},
        )

        usage = by_metric(await read(service, tenant, start=day.isoformat(), to=day.isoformat()))
        values = {
            key: usage[key]["value"]
            for key in ("logins", "latency_ms", "temperature_c", "queue_depth", "visitors")
        }
        assert values == {
            "logins": 3,
            "latency_ms": 30,
            "temperature_c": -2,
            "queue_depth": 4,
            "visitors": 2,
        }
        assert {usage[key]["aggregation"] for key in values} == {
            "COUNT",
            "AVG",
            "MIN",
            "LATEST",
            "UNIQUE_COUNT",
        }

    async def test_only_the_metrics_asked_for(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        response = await read(service, tenant, metric=["api_calls", "storage_bytes"])
        assert list(by_metric(response)) == ["api_calls", "storage_bytes"]


# --------------------------------------------------------------------- days in a time zone
class TestDaily:
    @pytest.fixture
    def sunday(self) -> date:
        return end_of_summer_time(datetime.now(UTC).date())

    async def _tenant_with_dst_usage(self, service: RunningService, sunday: date) -> UUID:
        """Usage around the night Berlin's clocks go back (03:00 CEST → 02:00 CET, 01:00 UTC)."""
        tenant = (await service.new_tenant()).tenant_id
        saturday, friday = sunday - timedelta(days=1), sunday - timedelta(days=2)
        await ingest(
            service,
            tenant,
            [
                ("api_calls", 1, at(friday, 22, 30)),  # Saturday 00:30 in Berlin
                ("api_calls", 2, at(saturday, 21, 59)),  # Saturday 23:59
                ("api_calls", 4, at(saturday, 22, 0)),  # Sunday 00:00 (CEST)
                ("api_calls", 8, at(sunday, 0, 30)),  # Sunday 02:30 CEST
                ("api_calls", 16, at(sunday, 1, 30)),  # Sunday 02:30 again, CET
                ("api_calls", 32, at(sunday, 22, 59)),  # Sunday 23:59 CET
                ("api_calls", 64, at(sunday, 23, 0)),  # Monday 00:00
            ],
        )
        return tenant

    async def test_days_in_berlin_across_the_end_of_summer_time(
        self, service: RunningService, sunday: date
    ) -> None:
        tenant = await self._tenant_with_dst_usage(service, sunday)
        first, last = sunday - timedelta(days=3), sunday + timedelta(days=2)

        response = await read(
            service,
            tenant,
            "/daily",
            start=first.isoformat(),
            to=last.isoformat(),
            tz=BERLIN,
            metric="api_calls",
        )
        days = rows_of(response)
        expected = {-3: 0, -2: 0, -1: 3, 0: 60, 1: 64, 2: 0}
        assert {d: r["value"] for d, r in days.items()} == {
            (sunday + timedelta(days=n)).isoformat(): v for n, v in expected.items()
        }
        assert days[sunday.isoformat()]["events"] == 4
        # each day starts at its own local midnight: summer time before, winter time after
        assert days[sunday.isoformat()]["start"] == f"{sunday.isoformat()}T00:00:00+02:00"
        monday = (sunday + timedelta(days=1)).isoformat()
        assert days[monday]["start"] == f"{monday}T00:00:00+01:00"

    async def test_the_same_usage_in_utc_days(self, service: RunningService, sunday: date) -> None:
        tenant = await self._tenant_with_dst_usage(service, sunday)
        first, last = sunday - timedelta(days=3), sunday + timedelta(days=2)

        response = await read(
            service,
            tenant,
            "/daily",
            start=first.isoformat(),
            to=last.isoformat(),
            metric="api_calls",
        )
        days = {d: r["value"] for d, r in rows_of(response).items()}
        assert days == {
            (sunday + timedelta(days=n)).isoformat(): v
            for n, v in {-3: 0, -2: 1, -1: 6, 0: 120, 1: 0, 2: 0}.items()
        }

    async def test_the_day_summer_time_ends_has_25_hours(
        self, service: RunningService, sunday: date
    ) -> None:
        tenant = await self._tenant_with_dst_usage(service, sunday)

        response = await read(
            service,
            tenant,
            "/daily",
            start=sunday.isoformat(),
            to=sunday.isoformat(),
            tz=BERLIN,
            window="hour",
            metric="api_calls",
        )
        assert response.status_code == 200, response.text
        hours = response.json()["rows"]
        assert len(hours) == 25
        assert {h["date"] for h in hours} == {sunday.isoformat()}
        twice = [h for h in hours if h["start"][11:16] == "02:00"]
        assert [(h["start"][-6:], h["value"]) for h in twice] == [("+02:00", 8), ("+01:00", 16)]

    async def test_months_in_berlin(self, service: RunningService, sunday: date) -> None:
        tenant = await self._tenant_with_dst_usage(service, sunday)
        october_31 = date(sunday.year, 10, 31)
        await ingest(service, tenant, [("api_calls", 128, at(october_31, 23, 30))])  # 1 Nov, 00:30

        response = await read(
            service,
            tenant,
            "/daily",
            start=f"{sunday.year}-10-01",
            to=f"{sunday.year}-11-30",
            tz=BERLIN,
            window="month",
            metric="api_calls",
        )
        months = {d: r["value"] for d, r in rows_of(response).items()}
        assert months == {f"{sunday.year}-10-01": 127, f"{sunday.year}-11-01": 128}


# --------------------------------------------------------------------- trends
class TestTrends:
    async def _tenant_with_history(self, service: RunningService) -> tuple[UUID, dict[str, float]]:
        tenant = (await service.new_tenant(plan="starter")).tenant_id
        now = datetime.now(UTC)
        history = [
            ("api_calls", 30.0, now - timedelta(hours=1)),
            ("api_calls", 40.0, now - timedelta(days=2)),
            ("api_calls", 20.0, now - timedelta(days=8)),
            ("api_calls", 15.0, now - timedelta(days=10)),
            ("api_calls", 5.0, now - timedelta(days=40)),
        ]
        await ingest(service, tenant, history)
        period_start = month_of(now.date()).start_at
        to_date = sum(v for _, v, when in history if when >= period_start)
        return tenant, {"to_date": to_date}

    async def test_this_week_against_the_last(self, service: RunningService) -> None:
        tenant, known = await self._tenant_with_history(service)

        response = await read(service, tenant, "/trends", period="7d", metric="api_calls")
        assert response.status_code == 200, response.text
        (trend,) = response.json()["metrics"]
        assert (trend["current"]["value"], trend["previous"]["value"]) == (70, 35)
        assert (trend["change"], trend["change_percent"]) == (35, 100.0)
        assert len(trend["days"]) == 7
        assert sum(d["value"] for d in trend["days"]) == 70
        assert trend["moving_average"] == pytest.approx(10)

        projection = trend["projection"]
        period = month_of(datetime.now(UTC).date())
        days_left = (period.end_at - datetime.now(UTC)) / timedelta(days=1)
        assert projection["to_date"] == known["to_date"]
        assert projection["projected"] == pytest.approx(known["to_date"] + 10 * days_left, abs=0.01)
        assert projection["limit"] == 500_000
        assert (projection["period_start"], projection["period_end"]) == (
            period.start.isoformat(),
            period.end.isoformat(),
        )

    async def test_this_month_against_the_last(self, service: RunningService) -> None:
        tenant, _ = await self._tenant_with_history(service)

        response = await read(service, tenant, "/trends", period="30d", metric="api_calls")
        assert response.status_code == 200, response.text
        (trend,) = response.json()["metrics"]
        assert (trend["current"]["value"], trend["previous"]["value"]) == (105, 5)
        assert (trend["change"], trend["change_percent"]) == (100, 2000.0)
        assert len(trend["days"]) == 30

    async def test_no_previous_usage_has_no_percent_change(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        await ingest(service, tenant, [("api_calls", 3, datetime.now(UTC) - timedelta(hours=1))])

        response = await read(service, tenant, "/trends", metric="api_calls")
        (trend,) = response.json()["metrics"]
        assert (trend["change"], trend["change_percent"]) == (3, None)


# --------------------------------------------------------------------- CSV
class TestCsv:
    async def test_usage_as_csv(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        day = datetime.now(UTC).date() - timedelta(days=2)
        await ingest(service, tenant, [("api_calls", 7, at(day, 5)), ("api_calls", 5, at(day, 6))])

        response = await read(
            service,
            tenant,
            accept="text/csv",
            start=day.isoformat(),
            to=day.isoformat(),
            metric="api_calls",
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        assert list(csv.reader(io.StringIO(response.text))) == [
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
            ["api_calls", "SUM", "calls", "12", "2", "12", day.isoformat(), "12"],
        ]

    async def test_days_as_csv(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        day = datetime.now(UTC).date() - timedelta(days=2)
        await ingest(service, tenant, [("api_calls", 7, at(day, 5))])

        response = await read(
            service,
            tenant,
            "/daily",
            accept="text/csv",
            start=day.isoformat(),
            to=(day + timedelta(days=1)).isoformat(),
            metric="api_calls",
        )
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [(r["date"], r["metric"], r["value"], r["events"]) for r in rows] == [
            (day.isoformat(), "api_calls", "7", "1"),
            ((day + timedelta(days=1)).isoformat(), "api_calls", "0", "0"),
        ]

    async def test_trends_as_csv(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        response = await read(service, tenant, "/trends", accept="text/csv", metric="api_calls")
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert len(rows) == 7
        assert set(rows[0]) == {"metric", "date", "value", "moving_average"}


# --------------------------------------------------------------------- bad parameters
BAD_QUERIES = [
    ("", {"from": "yesterday"}, "invalid-query"),
    ("", {"from": "2026-12-10", "to": "2026-12-01"}, "invalid-query"),
    ("", {"from": "2020-01-01", "to": "2026-01-01"}, "invalid-query"),
    ("/daily", {"tz": "Mars/Olympus_Mons"}, "invalid-query"),
    ("/daily", {"window": "week"}, "validation-error"),
    ("/daily", {"window": "hour", "from": "2026-01-01", "to": "2026-03-01"}, "invalid-query"),
    ("/trends", {"period": "90d"}, "validation-error"),
    ("", {"metric": "Not a meter key"}, "validation-error"),
    ("/daily", {"metric": ""}, "validation-error"),
    ("/trends", {"metric": "api_calls\u00ad"}, "validation-error"),
]


class TestBadParameters:
    @pytest.mark.parametrize(("path", "params", "slug"), BAD_QUERIES)
    async def test_bad_parameters_are_a_problem_response(
        self, service: RunningService, path: str, params: dict[str, str], slug: str
    ) -> None:
        tenant = (await service.new_tenant()).tenant_id
        response = await service.http.get(
            f"/tenants/{tenant}/usage{path}",
            params=params,
            headers=headers(service.settings, tenant),
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["status"] == 422
        assert problem["type"].endswith(slug)
        assert problem["detail"]

    async def test_a_tenant_id_that_is_not_a_uuid(self, service: RunningService) -> None:
        response = await service.http.get("/tenants/acme/usage", headers=headers(service.settings))
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_an_unknown_tenant_is_not_found(self, service: RunningService) -> None:
        response = await service.http.get(
            f"/tenants/{uuid4()}/usage", headers=headers(service.settings)
        )
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
