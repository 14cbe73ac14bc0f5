"""Ingestion from usage.recorded: exact totals under redelivery, crashes, disorder."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import httpx
from aiokafka import ConsumerRecord
from fastapi import FastAPI

from stellara_contracts import topics
from stellara_kit.db import asyncpg_dsn
from stellara_kit.testing import TestDatabase, consume, running_app, wait_for
from usage_svc.ingest.batch import IngestFaults, PreparedBatch
from usage_svc.main import create_app
from usage_svc.settings import Settings

from .conftest import RunningService
from .helpers import (
    Tenants,
    header_map,
    headers,
    ingest_lag,
    metric_value,
    produce_usage,
    record,
    usage_of,
    wait_for_events,
    wait_ready,
)

EVENTS = "stellara_usage_events_total"


def _hour_ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


class TestTotals:
    async def test_events_are_summed_per_metric(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        await produce_usage(
            service.settings,
            [record(tenant, "api_calls", 2) for _ in range(10)]
            + [record(tenant, "workflow_runs", 1) for _ in range(3)],
        )
        calls = await wait_for_events(service.http, service.settings, tenant, "api_calls", 10)
        runs = await wait_for_events(service.http, service.settings, tenant, "workflow_runs", 3)
        assert (calls["value"], runs["value"]) == (20, 3)

    async def test_tenants_are_counted_apart(self, service: RunningService) -> None:
        one = (await service.new_tenant()).tenant_id
        other = (await service.new_tenant()).tenant_id
        await produce_usage(
            service.settings,
            [record(one, "transactions", 5), record(other, "transactions", 7)],
        )
        mine = await wait_for_events(service.http, service.settings, one, "transactions", 1)
        theirs = await wait_for_events(service.http, service.settings, other, "transactions", 1)
        assert (mine["value"], theirs["value"]) == (5, 7)


class TestDuplicates:
    async def test_a_record_sent_again_counts_once(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        records = [record(tenant, "api_calls", 3) for _ in range(5)]
        before = await metric_value(service.http, EVENTS, outcome="duplicate")
        await produce_usage(service.settings, records)
        await wait_for_events(service.http, service.settings, tenant, "api_calls", 5)
        # the producer retries the whole lot, then a sentinel shows the retry was read
        await produce_usage(service.settings, [*records, record(tenant, "workflow_runs", 1)])
        await wait_for_events(service.http, service.settings, tenant, "workflow_runs", 1)

        usage = await usage_of(service.http, service.settings, tenant)
        assert (usage["api_calls"]["value"], usage["api_calls"]["events"]) == (15, 5)
        assert await metric_value(service.http, EVENTS, outcome="duplicate") == before + 5

    async def test_duplicates_inside_one_batch_count_once(self, service: RunningService) -> None:
        tenant = (await service.new_tenant()).tenant_id
        same_id = uuid4()
        when = _hour_ago(1)
        copies = [record(tenant, "api_calls", 4, event_id=same_id, occurred_at=when)] * 4
        await produce_usage(service.settings, [*copies, record(tenant, "workflow_runs", 1)])
        await wait_for_events(service.http, service.settings, tenant, "workflow_runs", 1)

        usage = await usage_of(service.http, service.settings, tenant)
        assert (usage["api_calls"]["value"], usage["api_calls"]["events"]) == (4, 1)

    async def test_the_same_event_id_in_two_tenants_is_two_events(
        self, service: RunningService
    ) -> None:
        one = (await service.new_tenant()).tenant_id
        other = (await service.new_tenant()).tenant_id
        shared = uuid4()
        await produce_usage(
            service.settings,
            [
                record(one, "api_calls", 1, event_id=shared),
                record(other, "api_calls", 1, event_id=shared),
            ],
        )
        assert (await wait_for_events(service.http, service.settings, one, "api_calls", 1))[
            "value"
        ] == 1
        assert (await wait_for_events(service.http, service.settings, other, "api_calls", 1))[
            "value"
        ] == 1


class TestOutOfOrder:
    async def test_late_events_land_in_their_own_hour_and_day(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant()).tenant_id
        now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
        recent, days_ago = now - timedelta(hours=1), now - timedelta(days=3)
        # the newest first, then one three days older
        await produce_usage(
            service.settings,
            [
                record(tenant, "api_calls", 10, occurred_at=recent),
                record(tenant, "api_calls", 1, occurred_at=days_ago),
            ],
        )
        start = days_ago.date().isoformat()
        await wait_for_events(service.http, service.settings, tenant, "api_calls", 2, start=start)

        response = await service.http.get(
            f"/tenants/{tenant}/usage/daily",
            params={
                "from": start,
                "to": recent.date().isoformat(),
                "metric": "api_calls",
            },
            headers=headers(service.settings, tenant),
        )
        assert response.status_code == 200, response.text
        by_day = {row["date"]: row["value"] for row in response.json()["rows"]}
        assert by_day[days_ago.date().isoformat()] == 1
        assert by_day[recent.date().isoformat()] == 10
        assert sum(by_day.values()) == 11

    async def test_the_latest_value_is_the_newest_by_occurred_at_not_by_arrival(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant()).tenant_id
        admin = headers(service.settings)
        meter = {"key": "queue_depth", "aggregation": "LATEST", "unit": "jobs"}
        added = await service.http.post("/meters", json=meter, headers=admin)
        assert added.status_code in (200, 201), added.text
        # 7 is the newest reading; 100 and 3 are older ones arriving after it
        await produce_usage(
            service.settings,
            [
                record(tenant, "queue_depth", 7, occurred_at=_hour_ago(0.1)),
                record(tenant, "queue_depth", 100, occurred_at=_hour_ago(5)),
            ],
        )
        await wait_for_events(service.http, service.settings, tenant, "queue_depth", 2)
        await produce_usage(
            service.settings, [record(tenant, "queue_depth", 3, occurred_at=_hour_ago(2))]
        )
        latest = await wait_for_events(service.http, service.settings, tenant, "queue_depth", 3)
        assert latest["value"] == 7


# --------------------------------------------------------------------- crashes (own service)
class CrashOnce:
    """An ingester fault that raises the first time it is reached (the test's first batch:
    nothing else is on the topic)."""

    def __init__(self) -> None:
        self.crashed_batches: list[int] = []  # records in the batch that crashed

    async def __call__(self, batch: PreparedBatch) -> None:
        if not self.crashed_batches:
            self.crashed_batches.append(batch.records)
            raise RuntimeError("injected crash")


class TestCrashes:
    async def test_a_crash_between_the_database_and_the_offset_commit_counts_nothing_twice(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        tenants: Tenants,
        faults: IngestFaults,
    ) -> None:
        tenant = tenants.starter.tenant_id
        crash = CrashOnce()
        faults.after_db_commit = crash
        await produce_usage(settings, [record(tenant, "api_calls", 2) for _ in range(20)])

        await wait_for_events(client, settings, tenant, "api_calls", 20)
        # a later record on the same partition: once it counts, the crashed batch was replayed
        await produce_usage(settings, [record(tenant, "workflow_runs", 1)])
        await wait_for_events(client, settings, tenant, "workflow_runs", 1)

        usage = await usage_of(client, settings, tenant)
        assert (usage["api_calls"]["value"], usage["api_calls"]["events"]) == (40, 20)
        assert len(crash.crashed_batches) == 1
        # every row of the crashed batch came back and was recognised as already counted
        replayed = crash.crashed_batches[0]
        assert await metric_value(client, EVENTS, outcome="duplicate") == replayed

    async def test_a_crash_before_the_database_commit_loses_nothing(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        tenants: Tenants,
        faults: IngestFaults,
    ) -> None:
        tenant = tenants.starter.tenant_id
        crash = CrashOnce()
        faults.before_db_commit = crash
        await produce_usage(settings, [record(tenant, "api_calls", 2) for _ in range(20)])

        await wait_for_events(client, settings, tenant, "api_calls", 20)
        await produce_usage(settings, [record(tenant, "workflow_runs", 1)])
        await wait_for_events(client, settings, tenant, "workflow_runs", 1)

        usage = await usage_of(client, settings, tenant)
        assert (usage["api_calls"]["value"], usage["api_calls"]["events"]) == (40, 20)
        assert len(crash.crashed_batches) == 1
        # the rolled-back batch left nothing behind for its replay to find
        assert await metric_value(client, EVENTS, outcome="duplicate") == 0

    async def test_a_restarted_service_reading_the_topic_again_counts_nothing_twice(
        self, app: FastAPI, settings: Settings, tenants: Tenants
    ) -> None:
        tenant = tenants.free.tenant_id
        await produce_usage(settings, [record(tenant, "api_calls", 1) for _ in range(10)])
        async with running_app(app) as http:
            await wait_ready(http)
            await wait_for_events(http, settings, tenant, "api_calls", 10)

        # a new deployment whose consumer group lost its offsets reads everything again
        replay = settings.model_copy(update={"consumer_group": f"{settings.consumer_group}-new"})
        async with running_app(create_app(replay)) as http:
            await wait_ready(http)
            await produce_usage(settings, [record(tenant, "workflow_runs", 1)])
            await wait_for_events(http, settings, tenant, "workflow_runs", 1)
            usage = await usage_of(http, settings, tenant)
            assert (usage["api_calls"]["value"], usage["api_calls"]["events"]) == (10, 10)
            assert await metric_value(http, EVENTS, outcome="duplicate") == 10


# --------------------------------------------------------------------- the database refuses records
#: hourly sums of ``transactions`` above this ceiling overflow, as double precision
#: overflows past 1.8e308: PostgreSQL's own error (SQLSTATE 22003), at the fold of the
#: aggregate, for values that each pass every bound but not summed in one hour
CEILING = 1000

SIMULATED_OVERFLOW = f"""
CREATE FUNCTION test_hourly_ceiling() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.metric = 'transactions' AND NEW.sum > {CEILING} THEN
        RAISE EXCEPTION 'value out of range: overflow' USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_hourly_ceiling BEFORE INSERT OR UPDATE ON hourly_aggregates
    FOR EACH ROW EXECUTE FUNCTION test_hourly_ceiling();
"""

#: the first fold of the test's database fails as a serialization failure would (40001)
SERIALIZATION_FAILURE_ONCE = """
CREATE SEQUENCE test_folds;
CREATE FUNCTION test_fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('test_folds') = 1 THEN
        RAISE EXCEPTION 'could not serialize access' USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_fail_once BEFORE INSERT OR UPDATE ON hourly_aggregates
    FOR EACH ROW EXECUTE FUNCTION test_fail_once();
"""

REFUSED = "database_rejected"

VISITORS = {
    "key": "visitors",
    "aggregation": "UNIQUE_COUNT",
    "unit": "visitors",
    "unique_property": "user",
}


async def run_sql(url: str, sql: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def dead_letters(settings: Settings) -> list[ConsumerRecord[bytes, bytes]]:
    topic = settings.topic(topics.dlq_topic(topics.USAGE_RECORDED))
    return await consume(settings.kafka_bootstrap_servers, topic, timeout=2, settle=0.3)


def good_traffic(tenants: Tenants) -> tuple[list[tuple[bytes, bytes]], dict[UUID, int]]:
    """Good events of two tenants, spread over their partitions; the expected totals."""
    records, totals = [], {}
    for n, tenant in enumerate((tenants.free.tenant_id, tenants.starter.tenant_id)):
        values = [n + 1 + i % 3 for i in range(150)]
        records += [record(tenant, "api_calls", v) for v in values]
        totals[tenant] = sum(values)
    return records, totals


async def lag_is_zero(settings: Settings) -> None:
    await wait_for(lambda: ingest_lag(settings), until=lambda lag: lag == 0, timeout=20)


class TestDatabaseRefusals:
    async def test_records_the_database_refuses_are_dead_lettered_and_the_rest_counts_once(
        self, app: FastAPI, settings: Settings, tenants: Tenants, test_database: TestDatabase
    ) -> None:
        await run_sql(test_database.owner_url, SIMULATED_OVERFLOW)
        free, starter = tenants.free.tenant_id, tenants.starter.tenant_id
        good, totals = good_traffic(tenants)
        pair = [record(starter, "transactions", 600) for _ in range(2)]  # overflow summed
        alone = record(free, "transactions", 5000)  # overflows on its own
        fine = record(free, "transactions", 40)
        # all on the topic before the service starts: the poison is read with the good
        # events, in the same batches
        await produce_usage(settings, [*good[:100], pair[0], alone, *good[100:200], pair[1]])
        await produce_usage(settings, [*good[200:], fine])

        async with running_app(app) as http:
            await wait_ready(http)
            for tenant, total in totals.items():
                usage = await wait_for_events(http, settings, tenant, "api_calls", 150)
                assert (usage["value"], usage["events"]) == (total, 150)
            await lag_is_zero(settings)

            letters = await dead_letters(settings)
            assert len(letters) == 2
            # one of the pair overflowed the hour the other had filled; the other counts
            assert {letter.value for letter in letters} < {pair[0][1], pair[1][1], alone[1]}
            assert alone[1] in {letter.value for letter in letters}
            for letter in letters:
                told = header_map(letter)
                assert told["x-dlq-reason"] == REFUSED
                assert "22003" in told["x-dlq-error"]
                assert "out of range" in told["x-dlq-error"]
            usage = await usage_of(http, settings, starter)
            assert (usage["transactions"]["value"], usage["transactions"]["events"]) == (600, 1)
            usage = await usage_of(http, settings, free)
            assert (usage["transactions"]["value"], usage["transactions"]["events"]) == (40, 1)
            refused = {"topic": topics.USAGE_RECORDED, "reason": REFUSED}
            assert await metric_value(http, "stellara_events_dead_lettered_total", **refused) == 2
            assert await metric_value(http, EVENTS, outcome="duplicate") == 0

    async def test_a_distinct_value_too_large_for_its_index_is_dead_lettered_alone(
        self, app: FastAPI, settings: Settings, tenants: Tenants
    ) -> None:
        # no simulation: PostgreSQL's own limit on a btree entry (about 2.7 kB, SQLSTATE
        # 54000) refuses the distinct value a UNIQUE_COUNT meter keeps
        tenant = tenants.starter.tenant_id
        huge = record(tenant, "visitors", properties={"user": secrets.token_urlsafe(3000)})
        visits = [record(tenant, "visitors", properties={"user": u}) for u in ("ada", "bob")]
        async with running_app(app) as http:
            await wait_ready(http)
            added = await http.post("/meters", json=VISITORS, headers=headers(settings))
            assert added.status_code == 201, added.text
            good, totals = good_traffic(tenants)
            await produce_usage(settings, [*good[:150], visits[0], huge, visits[1], *good[150:]])

            for tenant_id, total in totals.items():
                usage = await wait_for_events(http, settings, tenant_id, "api_calls", 150)
                assert (usage["value"], usage["events"]) == (total, 150)
            usage = await wait_for_events(http, settings, tenant, "visitors", 2)
            assert (usage["value"], usage["events"]) == (2, 2)
            await lag_is_zero(settings)
            [letter] = await dead_letters(settings)
            assert letter.value == huge[1]
            told = header_map(letter)
            assert told["x-dlq-reason"] == REFUSED
            assert told["x-dlq-error"].startswith("PostgreSQL refused the record (54000")
            assert "index row size" in told["x-dlq-error"]

    async def test_a_crash_while_the_batch_is_split_counts_nothing_twice(
        self,
        app: FastAPI,
        settings: Settings,
        tenants: Tenants,
        faults: IngestFaults,
        test_database: TestDatabase,
    ) -> None:
        await run_sql(test_database.owner_url, SIMULATED_OVERFLOW)
        starter = tenants.starter.tenant_id
        values = [1 + i % 5 for i in range(64)]
        poison = record(starter, "transactions", 5000)
        good = [record(starter, "api_calls", v) for v in values]
        transactions = 0

        async def crash_on_the_second_part(batch: PreparedBatch) -> None:
            # reached in every transaction that folded its rows: the first half committed
            nonlocal transactions
            transactions += 1
            if transactions == 2:
                raise RuntimeError("injected crash while splitting")

        faults.before_db_commit = crash_on_the_second_part
        await produce_usage(settings, [*good[:50], poison, *good[50:]])

        async with running_app(app) as http:
            await wait_ready(http)
            usage = await wait_for_events(http, settings, starter, "api_calls", len(values))
            await lag_is_zero(settings)
            assert (usage["value"], usage["events"]) == (sum(values), len(values))
            assert transactions > 2  # the crash happened, and the batch was read again
            letters = await dead_letters(settings)
            assert letters and {letter.value for letter in letters} == {poison[1]}
            refused = (await usage_of(http, settings, starter))["transactions"]
            assert (refused["value"], refused["events"]) == (0, 0)

    async def test_a_serialization_failure_is_tried_again_not_dead_lettered(
        self, app: FastAPI, settings: Settings, tenants: Tenants, test_database: TestDatabase
    ) -> None:
        await run_sql(test_database.owner_url, SERIALIZATION_FAILURE_ONCE)
        await self._nothing_is_dead_lettered(app, settings, tenants)

    async def test_a_lost_database_connection_is_tried_again_not_dead_lettered(
        self,
        app: FastAPI,
        settings: Settings,
        tenants: Tenants,
        faults: IngestFaults,
        test_database: TestDatabase,
    ) -> None:
        cut = []

        async def cut_the_connection(batch: PreparedBatch) -> None:
            # end the ingester's backend, as a PostgreSQL restart would, before the commit:
            # the one waiting in a transaction that has written period totals (a reader
            # polling the usage API may be in an open transaction too, and must not be cut)
            if not cut:
                cut.append(batch.records)
                conn = await asyncpg.connect(asyncpg_dsn(test_database.admin_url))
                try:
                    ended = await conn.fetchval(
                        "SELECT count(pg_terminate_backend(a.pid)) FROM pg_stat_activity a"
                        " WHERE a.datname = $1 AND a.state = 'idle in transaction'"
                        " AND EXISTS (SELECT 1 FROM pg_locks l"
                        " JOIN pg_class c ON c.oid = l.relation WHERE l.pid = a.pid"
                        " AND c.relname = 'period_aggregates' AND l.mode = 'RowExclusiveLock')",
                        test_database.name,
                    )
                    assert ended == 1, ended
                finally:
                    await conn.close()

        faults.before_db_commit = cut_the_connection
        await self._nothing_is_dead_lettered(app, settings, tenants)
        assert cut

    async def _nothing_is_dead_lettered(
        self, app: FastAPI, settings: Settings, tenants: Tenants
    ) -> None:
        good, totals = good_traffic(tenants)
        await produce_usage(settings, good)
        async with running_app(app) as http:
            await wait_ready(http)
            for tenant, total in totals.items():
                usage = await wait_for_events(http, settings, tenant, "api_calls", 150)
                assert (usage["value"], usage["events"]) == (total, 150)
            await lag_is_zero(settings)
            assert await dead_letters(settings) == []
