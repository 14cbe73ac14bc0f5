"""usage: meters, raw events and the dedup ledger (partitioned), aggregates, quotas, billing

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

from stellara_kit.rls import disable_tenant_rls, enable_tenant_rls, tenant_rls_statements

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = (
    "raw_events",
    "usage_dedup",
    "hourly_aggregates",
    "period_aggregates",
    "unique_values_hourly",
    "usage_thresholds",
    "billing_periods",
    "tenant_members",
)

DEFAULT_METERS = (
    ("api_calls", "SUM", "calls", "API requests a tenant made (from the gateway)."),
    ("storage_bytes", "MAX", "bytes", "Stored bytes; the period's peak is billed."),
    (
        "active_users",
        "MAX",
        "users",
        "Members of the tenant (follows MemberAdded/MemberRemoved); the period's peak is billed.",
    ),
    ("transactions", "SUM", "transactions", "Business transactions processed."),
    ("workflow_runs", "SUM", "runs", "Workflow executions started."),
)


def _sql_text_array(statements: list[str]) -> str:
    return "ARRAY[" + ", ".join("'" + s.replace("'", "''") + "'" for s in statements) + "]"


#: RLS of a partition, for partitions created at run time (``{t}`` is the partition)
PARTITION_RLS = _sql_text_array(tenant_rls_statements("{t}"))


def upgrade() -> None:
    # ------------------------------------------------------------------ meters (global)
    op.execute(
        """
        CREATE TABLE meters (
            key text PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_]{0,62}$'),
            aggregation text NOT NULL CHECK (aggregation IN
                ('SUM', 'COUNT', 'MAX', 'MIN', 'AVG', 'LATEST', 'UNIQUE_COUNT')),
            unit text NOT NULL,
            description text NOT NULL DEFAULT '',
            unique_property text,
            has_data boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CHECK ((aggregation = 'UNIQUE_COUNT') = (unique_property IS NOT NULL))
        )
        """
    )
    for key, aggregation, unit, description in DEFAULT_METERS:
        op.execute(
            "INSERT INTO meters (key, aggregation, unit, description) VALUES "
            f"('{key}', '{aggregation}', '{unit}', '{description.replace(chr(39), chr(39) * 2)}')"
        )

    # ------------------------------------------------------------------ raw events
    # Partitioned by the UTC day of occurred_at; partitions are created ahead and on
    # demand, and dropped past the dedup window. No index: nothing reads raw events on
    # a hot path (queries answer from aggregates); dedup lives in usage_dedup.
    op.execute(
        """
        CREATE TABLE raw_events (
            tenant_id uuid NOT NULL,
            event_id uuid NOT NULL,
            metric text NOT NULL,
            value double precision NOT NULL,
            occurred_at timestamptz NOT NULL,
            source text NOT NULL,
            properties jsonb,
            received_at timestamptz NOT NULL DEFAULT now()
        ) PARTITION BY RANGE (occurred_at)
        """
    )

    # ------------------------------------------------------------------ dedup ledger
    # (tenant, event id) of every accepted event, partitioned by the epoch (a span of
    # receive days) it was first seen in. Inserts go to the current epoch with
    # ON CONFLICT DO NOTHING; older epochs still inside the window are probed.
    op.execute(
        """
        CREATE TABLE usage_dedup_epochs (
            start_day date PRIMARY KEY,
            end_day date NOT NULL CHECK (end_day > start_day),
            partition_name text NOT NULL UNIQUE
        )
        """
    )
    op.execute(
        """
        CREATE TABLE usage_dedup (
            tenant_id uuid NOT NULL,
            event_id uuid NOT NULL,
            epoch date NOT NULL,
            PRIMARY KEY (tenant_id, event_id, epoch)
        ) PARTITION BY RANGE (epoch)
        """
    )

    # ------------------------------------------------------------------ aggregates
    op.execute(
        """
        CREATE TABLE hourly_aggregates (
            tenant_id uuid NOT NULL,
            metric text NOT NULL,
            hour timestamptz NOT NULL,
            sum double precision NOT NULL,
            count bigint NOT NULL,
            min double precision NOT NULL,
            max double precision NOT NULL,
            last_value double precision NOT NULL,
            last_at timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, metric, hour)
        ) WITH (fillfactor = 70)
        """
    )
    op.execute(
        """
        CREATE TABLE period_aggregates (
            tenant_id uuid NOT NULL,
            metric text NOT NULL,
            period_start date NOT NULL,
            sum double precision NOT NULL,
            count bigint NOT NULL,
            min double precision NOT NULL,
            max double precision NOT NULL,
            last_value double precision NOT NULL,
            last_at timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, metric, period_start)
        ) WITH (fillfactor = 70)
        """
    )
    op.execute(
        """
        CREATE TABLE unique_values_hourly (
            tenant_id uuid NOT NULL,
            metric text NOT NULL,
            hour timestamptz NOT NULL,
            value text NOT NULL,
            PRIMARY KEY (tenant_id, metric, hour, value)
        )
        """
    )

    # ------------------------------------------------------------------ quotas, billing, members
    op.execute(
        """
        CREATE TABLE usage_thresholds (
            tenant_id uuid NOT NULL,
            metric text NOT NULL,
            period_start date NOT NULL,
            threshold integer NOT NULL,
            plan text NOT NULL,
            limit_value double precision NOT NULL,
            value double precision NOT NULL,
            event_id uuid NOT NULL,
            reached_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, metric, period_start, threshold)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE billing_periods (
            tenant_id uuid NOT NULL,
            period_start date NOT NULL,
            period_end date NOT NULL,
            plan text NOT NULL,
            currency text NOT NULL,
            base_fee numeric NOT NULL,
            total numeric NOT NULL,
            line_items jsonb NOT NULL,
            event_id uuid NOT NULL,
            closed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, period_start)
        )
        """
    )
    op.execute("CREATE INDEX billing_periods_by_start ON billing_periods (period_start)")
    op.execute(
        """
        CREATE TABLE tenant_members (
            tenant_id uuid NOT NULL,
            user_id text NOT NULL,
            role text NOT NULL,
            added_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, user_id)
        )
        """
    )
    for table in TENANT_TABLES:
        enable_tenant_rls(op.execute, table)

    # ------------------------------------------------------------------ partition management
    # The runtime role may not create tables: these run as the schema owner. A new
    # partition gets the same row-level security as its parent (queries through the
    # parent use the parent's policy; this guards direct access to a partition).
    op.execute(
        f"""
        CREATE FUNCTION usage_secure_partition(p_name text) RETURNS void
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
        DECLARE statement text;
        BEGIN
            FOREACH statement IN ARRAY {PARTITION_RLS} LOOP
                EXECUTE replace(statement, '{{t}}', quote_ident(p_name));
            END LOOP;
        END $fn$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION usage_secure_partition(text) FROM PUBLIC")
    op.execute(
        """
        CREATE FUNCTION usage_ensure_raw_partitions(p_days date[]) RETURNS integer
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
        DECLARE
            d date;
            name text;
            created integer := 0;
        BEGIN
            FOREACH d IN ARRAY p_days LOOP
                name := 'raw_events_p' || to_char(d, 'YYYYMMDD');
                CONTINUE WHEN to_regclass(name) IS NOT NULL;
                PERFORM pg_advisory_xact_lock(hashtext('usage_partitions'));
                CONTINUE WHEN to_regclass(name) IS NOT NULL;
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF raw_events FOR VALUES FROM (%L) TO (%L)',
                    name,
                    to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00',
                    to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00'
                );
                PERFORM usage_secure_partition(name);
                created := created + 1;
            END LOOP;
            RETURN created;
        END $fn$
        """
    )
    op.execute(
        """
        CREATE FUNCTION usage_dedup_epoch(p_day date, p_span integer) RETURNS date
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
        DECLARE
            found date;
            new_start date;
            new_end date;
            next_start date;
            name text;
        BEGIN
            SELECT start_day INTO found FROM usage_dedup_epochs
             WHERE start_day <= p_day AND end_day > p_day;
            IF found IS NOT NULL THEN
                RETURN found;
            END IF;
            PERFORM pg_advisory_xact_lock(hashtext('usage_partitions'));
            SELECT start_day INTO found FROM usage_dedup_epochs
             WHERE start_day <= p_day AND end_day > p_day;
            IF found IS NOT NULL THEN
                RETURN found;
            END IF;
            -- a new epoch starts where the last one before p_day ended (or at p_day after
            -- a gap) and never overlaps a later one
            SELECT max(end_day) INTO new_start FROM usage_dedup_epochs WHERE end_day <= p_day;
            IF new_start IS NULL OR new_start + p_span <= p_day THEN
                new_start := p_day;
            END IF;
            SELECT min(start_day) INTO next_start FROM usage_dedup_epochs WHERE start_day > p_day;
            new_end := least(new_start + p_span, coalesce(next_start, new_start + p_span));
            name := 'usage_dedup_e' || to_char(new_start, 'YYYYMMDD');
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF usage_dedup FOR VALUES FROM (%L) TO (%L)',
                name, new_start, new_end
            );
            PERFORM usage_secure_partition(name);
            INSERT INTO usage_dedup_epochs (start_day, end_day, partition_name)
            VALUES (new_start, new_end, name);
            RETURN new_start;
        END $fn$
        """
    )
    op.execute(
        """
        CREATE FUNCTION usage_drop_expired_partitions(p_raw_before date, p_dedup_before date)
        RETURNS text[]
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
        DECLARE
            part record;
            dropped text[] := ARRAY[]::text[];
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtext('usage_partitions'));
            FOR part IN
                SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'raw_events'::regclass
                   AND c.relname ~ '^raw_events_p[0-9]{8}$'
                   AND to_date(substring(c.relname from 13), 'YYYYMMDD') + 1 <= p_raw_before
            LOOP
                EXECUTE format('DROP TABLE %I', part.name);
                dropped := dropped || part.name;
            END LOOP;
            FOR part IN
                SELECT partition_name AS name FROM usage_dedup_epochs WHERE end_day <= p_dedup_before
            LOOP
                EXECUTE format('DROP TABLE IF EXISTS %I', part.name);
                DELETE FROM usage_dedup_epochs WHERE partition_name = part.name;
                dropped := dropped || part.name;
            END LOOP;
            RETURN dropped;
        END $fn$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS usage_drop_expired_partitions(date, date)")
    op.execute("DROP FUNCTION IF EXISTS usage_dedup_epoch(date, integer)")
    op.execute("DROP FUNCTION IF EXISTS usage_ensure_raw_partitions(date[])")
    op.execute("DROP FUNCTION IF EXISTS usage_secure_partition(text)")
    for table in TENANT_TABLES:
        disable_tenant_rls(op.execute, table)
    for table in (
        "tenant_members",
        "billing_periods",
        "usage_thresholds",
        "unique_values_hourly",
        "period_aggregates",
        "hourly_aggregates",
        "usage_dedup",
        "usage_dedup_epochs",
        "raw_events",
        "meters",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
