"""The ingester's SQL: one transaction per batch, on the raw asyncpg connection.

``fold_batch`` runs inside the caller's transaction:

1. COPY the batch into a temporary staging table (``ON COMMIT DELETE ROWS``);
2. delete from it the events the dedup ledger already holds (one index probe
   per event, over the epochs still inside the window);
3. one statement records the rest in the ledger (a plain insert: should another
   replica fold one of them meanwhile, the unique key fails the transaction and
   the caller retries it, probe included) and folds them into ``raw_events``,
   the hourly aggregates, the distinct-value sets and the period totals
   (upserts that add to what is there; the period totals are folded from the
   batch's hourly groups, not from the events again);
4. the period totals it touched come back for the quota check.

A replayed batch finds every id in the ledger, inserts nothing, and so adds
nothing to any aggregate.

A batch the database refuses for its data (``data_refusal``) is split by the
caller until the refused records are found; anything else (a lost connection, a
restart, a serialization failure, the ledger race) is worth trying again as it is.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, NamedTuple
from uuid import UUID

import asyncpg

from usage_svc.meters import Totals

# --------------------------------------------------------------------- the staging table
# The classifier builds each row in this layout and ``fold_batch`` COPYs it into this
# table as it is: the tuple, the column list and the table change together
# (``tests/test_ingest_staging.py`` checks that they agree).

STAGING_TABLE = "usage_staging"

_CREATE_STAGING = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING_TABLE} (
    tenant_id uuid NOT NULL,
    event_id uuid NOT NULL,
    metric text NOT NULL,
    value double precision NOT NULL,
    occurred_at timestamptz NOT NULL,
    source text NOT NULL,
    properties jsonb,
    tracked boolean NOT NULL,
    unique_value text
) ON COMMIT DELETE ROWS
"""

#: A row of the staging table, in the COPY column order of ``STAGING_COLUMNS``:
#: (tenant_id, event_id, metric, value, occurred_at, source, properties, tracked,
#: unique_value), ids as canonical text, properties as JSON text. A plain tuple of
#: strings, floats, datetimes and booleans on purpose: the garbage collector stops
#: tracking such tuples, so batches of tens of thousands of rows do not make it scan
#: the heap over and over (a NamedTuple, or a UUID object inside, would).
StagedRow = tuple[str, str, str, float, datetime, str, str | None, bool, str | None]

STAGING_COLUMNS = (
    "tenant_id",
    "event_id",
    "metric",
    "value",
    "occurred_at",
    "source",
    "properties",
    "tracked",
    "unique_value",
)

#: positions in a StagedRow
ROW_TENANT: Final = 0
ROW_EVENT: Final = 1
ROW_METRIC: Final = 2
ROW_OCCURRED_AT: Final = 4


class StagedFields(NamedTuple):
    """A StagedRow with named, typed fields (for tests and tools; the hot path keeps tuples)."""

    tenant_id: UUID
    event_id: UUID
    metric: str
    value: float
    occurred_at: datetime
    source: str
    properties: str | None
    tracked: bool
    unique_value: str | None

    @classmethod
    def of(cls, row: StagedRow) -> StagedFields:
        return cls(UUID(row[0]), UUID(row[1]), *row[2:])


# --------------------------------------------------------------------- folding a batch

_FOLD_COLUMNS = """
    sum = agg.sum + EXCLUDED.sum,
    count = agg.count + EXCLUDED.count,
    min = least(agg.min, EXCLUDED.min),
    max = greatest(agg.max, EXCLUDED.max),
    last_value = CASE WHEN (EXCLUDED.last_at, EXCLUDED.last_value) > (agg.last_at, agg.last_value)
                      THEN EXCLUDED.last_value ELSE agg.last_value END,
    last_at = greatest(agg.last_at, EXCLUDED.last_at)
"""

#: hour buckets in UTC (as ``date_trunc('hour', t, 'UTC')``, for less work)
_HOUR = "date_bin('1 hour', occurred_at, TIMESTAMPTZ '2000-01-01 00:00:00+00')"

#: $1 current epoch, $2 oldest epoch start still inside the window. A scalar subquery
#: with LIMIT, so that the plan stays one index probe per staged event whatever the
#: statistics say (the staging table has none).
PROBE_SQL = f"""
DELETE FROM {STAGING_TABLE} s
 WHERE (SELECT true FROM usage_dedup d
         WHERE d.tenant_id = s.tenant_id AND d.event_id = s.event_id
           AND d.epoch >= $2::date AND d.epoch <= $1::date
         LIMIT 1)
"""

#: $1 current epoch; the staging table holds only events the ledger does not
FOLD_SQL = f"""
WITH ledger AS (
    INSERT INTO usage_dedup (tenant_id, event_id, epoch)
    SELECT tenant_id, event_id, $1::date FROM {STAGING_TABLE} ORDER BY tenant_id, event_id
), raw AS (
    INSERT INTO raw_events (tenant_id, event_id, metric, value, occurred_at, source, properties)
    SELECT tenant_id, event_id, metric, value, occurred_at, source, properties FROM {STAGING_TABLE}
), uniq AS (
    INSERT INTO unique_values_hourly (tenant_id, metric, hour, value)
    SELECT DISTINCT tenant_id, metric, {_HOUR}, unique_value
      FROM {STAGING_TABLE} WHERE unique_value IS NOT NULL
    ON CONFLICT DO NOTHING
), hours AS MATERIALIZED (
    SELECT tenant_id, metric, {_HOUR} AS hour, tracked,
           sum(value) AS sum, count(*) AS count, min(value) AS min, max(value) AS max,
           (array_agg(value ORDER BY occurred_at DESC, value DESC))[1] AS last_value,
           max(occurred_at) AS last_at
      FROM {STAGING_TABLE} GROUP BY 1, 2, 3, 4
), hourly AS (
    INSERT INTO hourly_aggregates AS agg
        (tenant_id, metric, hour, sum, count, min, max, last_value, last_at)
    SELECT tenant_id, metric, hour, sum, count, min, max, last_value, last_at FROM hours
    ON CONFLICT (tenant_id, metric, hour) DO UPDATE SET {_FOLD_COLUMNS}
)
INSERT INTO period_aggregates AS agg
    (tenant_id, metric, period_start, sum, count, min, max, last_value, last_at)
SELECT tenant_id, metric, date_trunc('month', hour, 'UTC')::date,
       sum(sum), sum(count), min(min), max(max),
       (array_agg(last_value ORDER BY last_at DESC, last_value DESC))[1], max(last_at)
  FROM hours WHERE tracked GROUP BY 1, 2, 3
ON CONFLICT (tenant_id, metric, period_start) DO UPDATE SET {_FOLD_COLUMNS}
RETURNING agg.tenant_id, agg.metric, agg.period_start, agg.sum, agg.count, agg.min,
          agg.max, agg.last_value, agg.last_at
"""


#: SQLSTATE classes of refusals that the same rows get every time: data exceptions (22:
#: a value out of range, text PostgreSQL cannot store…), integrity constraint violations
#: (23) and program limits (54: an index row too large). Never connection (08), operator
#: intervention (57: a restart), transaction rollback (40: serialization, deadlock) or
#: resource (53) errors, which pass, nor 42 (a privilege or the SQL itself: no record's fault).
DATA_REFUSAL_CLASSES = frozenset({"22", "23", "54"})


def data_refusal(exc: BaseException) -> asyncpg.PostgresError | None:
    """The database's refusal of the data itself behind ``exc``, or None.

    A unique violation is the ledger race (another replica recorded one of the events
    first), which a new transaction resolves: not a refusal.
    """
    seen: BaseException | None = exc
    for _ in range(8):  # the asyncpg error, possibly wrapped (SQLAlchemy keeps it as ``orig``)
        if seen is None:
            return None
        if isinstance(seen, asyncpg.PostgresError):
            state = seen.sqlstate or ""
            if state[:2] in DATA_REFUSAL_CLASSES and not isinstance(
                seen, asyncpg.UniqueViolationError
            ):
                return seen
            return None
        seen = seen.__cause__ or getattr(seen, "orig", None)
    return None


def describe_refusal(error: asyncpg.PostgresError) -> str:
    """The refusal as a dead letter's error: SQLSTATE, message and PostgreSQL's detail."""
    text = f"PostgreSQL refused the record ({error.sqlstate} {type(error).__name__}): {error}"
    detail = getattr(error, "detail", None)
    return f"{text} ({detail})" if detail else text


@dataclass(frozen=True)
class PeriodTotals:
    tenant_id: UUID
    metric: str
    period_start: date
    totals: Totals


@dataclass(frozen=True)
class FoldResult:
    accepted: int
    periods: list[PeriodTotals]


_staged: weakref.WeakSet[asyncpg.Connection] = weakref.WeakSet()


async def _ensure_staging(conn: asyncpg.Connection) -> None:
    # a temporary table lives as long as its connection; create it once per connection
    if conn in _staged:
        return
    await conn.execute(_CREATE_STAGING)
    _staged.add(conn)


async def fold_batch(
    conn: asyncpg.Connection,
    rows: Sequence[StagedRow],
    *,
    epoch: date,
    probe_from: date,
) -> FoldResult:
    """Record ``rows`` once each; fold the new ones into the aggregates (in the open transaction).

    Raises ``asyncpg.UniqueViolationError`` when another transaction recorded one of
    the events meanwhile: roll back and call again.
    """
    await _ensure_staging(conn)
    try:
        await conn.copy_records_to_table(STAGING_TABLE, records=rows, columns=STAGING_COLUMNS)
        status = await conn.execute(PROBE_SQL, epoch, probe_from)
        known = int(status.rsplit(" ", 1)[1])  # "DELETE <n>"
        result = await conn.fetch(FOLD_SQL, epoch) if known < len(rows) else []
    except BaseException:
        # the transaction rolls back, and with it a staging table created in it
        _staged.discard(conn)
        raise
    periods = [
        PeriodTotals(
            row["tenant_id"],
            row["metric"],
            row["period_start"],
            Totals(
                sum=row["sum"],
                count=row["count"],
                min=row["min"],
                max=row["max"],
                last_value=row["last_value"],
                last_at=row["last_at"],
            ),
        )
        for row in result
    ]
    return FoldResult(accepted=len(rows) - known, periods=periods)


async def unique_counts(
    conn: asyncpg.Connection, keys: Iterable[tuple[UUID, str, datetime, datetime]]
) -> dict[tuple[UUID, str], int]:
    """Distinct values per (tenant, metric) over ``[start, end)`` hours."""
    keys = list(keys)
    if not keys:
        return {}
    rows = await conn.fetch(
        """
        SELECT k.tenant_id, k.metric, count(DISTINCT u.value) AS n
          FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[])
               AS k(tenant_id, metric, start_at, end_at)
          LEFT JOIN unique_values_hourly u
            ON u.tenant_id = k.tenant_id AND u.metric = k.metric
           AND u.hour >= k.start_at AND u.hour < k.end_at
         GROUP BY k.tenant_id, k.metric
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [k[3] for k in keys],
    )
    return {(row["tenant_id"], row["metric"]): row["n"] for row in rows}


@dataclass(frozen=True)
class ThresholdRow:
    tenant_id: UUID
    metric: str
    period_start: date
    threshold: int
    plan: str
    limit: float
    value: float
    event_id: UUID


async def record_thresholds(
    conn: asyncpg.Connection, crossings: Sequence[ThresholdRow]
) -> set[tuple[UUID, str, date, int]]:
    """Insert crossings once; returns the keys inserted now (the others fired before)."""
    if not crossings:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO usage_thresholds
            (tenant_id, metric, period_start, threshold, plan, limit_value, value, event_id)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::date[], $4::int[], $5::text[],
                             $6::float8[], $7::float8[], $8::uuid[])
        ON CONFLICT DO NOTHING
        RETURNING tenant_id, metric, period_start, threshold
        """,
        [c.tenant_id for c in crossings],
        [c.metric for c in crossings],
        [c.period_start for c in crossings],
        [c.threshold for c in crossings],
        [c.plan for c in crossings],
        [c.limit for c in crossings],
        [c.value for c in crossings],
        [c.event_id for c in crossings],
    )
    return {(r["tenant_id"], r["metric"], r["period_start"], r["threshold"]) for r in rows}


async def mark_meters_with_data(conn: asyncpg.Connection, metrics: Iterable[str]) -> None:
    await conn.execute(
        "UPDATE meters SET has_data = true WHERE key = ANY($1::text[]) AND NOT has_data",
        list(metrics),
    )


# --------------------------------------------------------------------- partitions
async def ensure_raw_partitions(conn: asyncpg.Connection, days: Iterable[date]) -> int:
    created: int = await conn.fetchval(
        "SELECT usage_ensure_raw_partitions($1::date[])", sorted(set(days))
    )
    return created


async def dedup_epoch(conn: asyncpg.Connection, day: date, span_days: int) -> date:
    """The start of the ledger epoch holding ``day`` (created when missing)."""
    start: date = await conn.fetchval("SELECT usage_dedup_epoch($1, $2)", day, span_days)
    return start


async def oldest_live_epoch(conn: asyncpg.Connection, window_start: date, current: date) -> date:
    """The first epoch that still holds ids received on or after ``window_start``."""
    found: date | None = await conn.fetchval(
        "SELECT min(start_day) FROM usage_dedup_epochs WHERE end_day > $1", window_start
    )
    return min(found, current) if found is not None else current


async def drop_expired_partitions(
    conn: asyncpg.Connection, *, raw_before: date, dedup_before: date
) -> list[str]:
    dropped: list[str] = await conn.fetchval(
        "SELECT usage_drop_expired_partitions($1, $2)", raw_before, dedup_before
    )
    return list(dropped or [])
