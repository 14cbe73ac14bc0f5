"""The staging row the classifier builds, the COPY column list and the staging table agree."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import orjson

from stellara_contracts.events import TenantSnapshot, TenantStatus
from stellara_kit.db import asyncpg_dsn
from stellara_kit.tenant_directory import TenantDirectory
from stellara_kit.testing import TestDatabase
from usage_svc.ingest import repository as repo
from usage_svc.ingest.classify import UsageClassifier
from usage_svc.ingest.decoding import ParsedUsage
from usage_svc.ingest.repository import (
    ROW_EVENT,
    ROW_METRIC,
    ROW_OCCURRED_AT,
    ROW_TENANT,
    STAGING_COLUMNS,
    STAGING_TABLE,
    StagedFields,
    StagedRow,
)
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.meters import Aggregation, Meter
from usage_svc.plans import BUILTIN_PLANS

NOW = datetime.now(UTC).replace(microsecond=0)


def ddl_columns() -> list[str]:
    body = repo._CREATE_STAGING.split("(", 1)[1].rsplit(")", 1)[0]
    return [re.match(r"\s*(\w+)\s", line + " ").group(1) for line in body.split(",")]  # type: ignore[union-attr]


def classified_rows() -> tuple[list[ParsedUsage], list[StagedRow]]:
    """Rows as the classifier builds them: one with properties and a distinct value, one
    without any, for a metric a plan limits and one no plan does."""
    tenant = TenantSnapshot(
        tenant_id=uuid4(),
        slug="staging",
        name="Staging",
        plan="starter",
        status=TenantStatus.ACTIVE,
        version=1,
        created_at=NOW - timedelta(days=30),
        updated_at=NOW - timedelta(days=30),
    )
    directory = TenantDirectory("unused:9092")
    directory.apply(tenant)
    meters = MeterCatalogue(None)
    meters.put(Meter("visitors", Aggregation.UNIQUE_COUNT, "visitors", unique_property="user"))
    classifier = UsageClassifier(
        directory=directory,
        meters=meters,
        plans=BUILTIN_PLANS,
        dedup_window=timedelta(days=30),
        future_skew=timedelta(minutes=5),
        allow_unknown_metrics=False,
    )
    events = [
        ParsedUsage(
            str(uuid4()), tenant.tenant_id, "visitors", 1.0, NOW, "web", {"user": "ada", "n": 2}
        ),
        ParsedUsage(str(uuid4()), tenant.tenant_id, "api_calls", 2.5, NOW, "gateway", {}),
    ]
    rows = [classifier.classify(event, NOW) for event in events]
    assert all(isinstance(row, tuple) and len(row) == len(STAGING_COLUMNS) for row in rows)
    return events, rows  # type: ignore[return-value]


class TestStagingLayout:
    def test_the_copy_columns_are_the_tables_columns_in_order(self) -> None:
        assert ddl_columns() == list(STAGING_COLUMNS)
        assert StagedFields._fields == STAGING_COLUMNS

    def test_the_row_positions_name_their_columns(self) -> None:
        assert STAGING_COLUMNS[ROW_TENANT] == "tenant_id"
        assert STAGING_COLUMNS[ROW_EVENT] == "event_id"
        assert STAGING_COLUMNS[ROW_METRIC] == "metric"
        assert STAGING_COLUMNS[ROW_OCCURRED_AT] == "occurred_at"

    async def test_classified_rows_copy_into_the_staging_table_field_for_field(
        self, test_database: TestDatabase
    ) -> None:
        events, rows = classified_rows()
        conn = await asyncpg.connect(asyncpg_dsn(test_database.runtime_url))
        try:
            async with conn.transaction():
                await repo._ensure_staging(conn)
                columns = await conn.fetch(
                    "SELECT attname FROM pg_attribute"
                    " WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped"
                    " ORDER BY attnum",
                    STAGING_TABLE,
                )
                assert tuple(c["attname"] for c in columns) == STAGING_COLUMNS
                await conn.copy_records_to_table(
                    STAGING_TABLE, records=rows, columns=STAGING_COLUMNS
                )
                stored = await conn.fetch(
                    f"SELECT {', '.join(STAGING_COLUMNS)} FROM {STAGING_TABLE} ORDER BY value"
                )
        finally:
            await conn.close()
        got = [StagedFields(*row) for row in stored]
        # what the table holds, read back by column name, is what each event said
        for event, row in zip(events, got, strict=True):
            assert (row.tenant_id, str(row.event_id)) == (event.tenant_id, event.event_id)
            assert (row.metric, row.value, row.occurred_at, row.source) == (
                event.metric,
                event.value,
                event.occurred_at,
                event.source,
            )
            # jsonb comes back in PostgreSQL's own spelling: compare the documents
            stored_properties = orjson.loads(row.properties) if row.properties else {}
            assert stored_properties == event.properties
        visitors, api_calls = got
        assert (visitors.unique_value, visitors.tracked) == ("ada", False)
        assert (api_calls.unique_value, api_calls.properties, api_calls.tracked) == (
            None,
            None,
            True,
        )
        # and the named view of a staged row reads it the same way
        assert [StagedFields.of(row)._replace(properties=None) for row in rows] == [
            row._replace(properties=None) for row in got
        ]
