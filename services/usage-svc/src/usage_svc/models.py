"""usage-svc tables (the migrations in ``migrations/versions`` create them).

Raw events and the dedup ledger are partitioned tables, written only by the
ingester's SQL (``ingest/repository.py``); everything else is read and written
through these declarations.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase

from stellara_kit.inbox import inbox_table
from stellara_kit.outbox import outbox_table


class Base(DeclarativeBase):
    metadata = MetaData()


metadata = Base.metadata
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

meters = Table(
    "meters",
    metadata,
    Column("key", Text, primary_key=True),
    Column("aggregation", Text, nullable=False),
    Column("unit", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("unique_property", Text),
    Column("has_data", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

raw_events = Table(
    "raw_events",
    metadata,
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("metric", Text, nullable=False),
    Column("value", Float, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("source", Text, nullable=False),
    Column("properties", JSONB),
    Column("received_at", DateTime(timezone=True), nullable=False),
    postgresql_partition_by="RANGE (occurred_at)",
)

usage_dedup = Table(
    "usage_dedup",
    metadata,
    Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("epoch", Date, primary_key=True),
    postgresql_partition_by="RANGE (epoch)",
)


def _folded(name: str, bucket: Column[object]) -> Table:
    return Table(
        name,
        metadata,
        Column("tenant_id", UUID(as_uuid=True), primary_key=True),
        Column("metric", Text, primary_key=True),
        bucket,
        Column("sum", Float, nullable=False),
        Column("count", BigInteger, nullable=False),
        Column("min", Float, nullable=False),
        Column("max", Float, nullable=False),
        Column("last_value", Float, nullable=False),
        Column("last_at", DateTime(timezone=True), nullable=False),
    )


hourly_aggregates = _folded(
    "hourly_aggregates", Column("hour", DateTime(timezone=True), primary_key=True)
)
period_aggregates = _folded("period_aggregates", Column("period_start", Date, primary_key=True))

unique_values_hourly = Table(
    "unique_values_hourly",
    metadata,
    Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    Column("metric", Text, primary_key=True),
    Column("hour", DateTime(timezone=True), primary_key=True),
    Column("value", Text, primary_key=True),
)

usage_thresholds = Table(
    "usage_thresholds",
    metadata,
    Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    Column("metric", Text, primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("threshold", Integer, primary_key=True),
    Column("plan", Text, nullable=False),
    Column("limit_value", Float, nullable=False),
    Column("value", Float, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("reached_at", DateTime(timezone=True), nullable=False),
)

billing_periods = Table(
    "billing_periods",
    metadata,
    Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("period_end", Date, nullable=False),
    Column("plan", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("base_fee", Numeric, nullable=False),
    Column("total", Numeric, nullable=False),
    Column("line_items", JSONB, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=False),
)

tenant_members = Table(
    "tenant_members",
    metadata,
    Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
)
