"""the owner's functions trust nothing the runtime role can write

The partition functions run with the owner's rights (SECURITY DEFINER). The
retention function dropped whatever table ``usage_dedup_epochs`` named, and
default privileges let the runtime role write that table: it could have had
the owner drop any of the owner's tables. Now:

- the runtime role (every grantee but the owner) may only read
  ``usage_dedup_epochs``;
- every definer function checks each name it acts on: the name's pattern, and
  that the table really is a partition of ``raw_events`` or ``usage_dedup`` in
  this schema, and refuses anything else; names reach SQL through ``%I`` and
  qualified with the schema;
- every definer function runs with ``search_path = pg_catalog, public,
  pg_temp`` (pg_temp named last: left out, it would be searched first for
  tables, so a temporary table of the caller could stand in for one of ours);
- the unchecked partition helper is gone: securing a partition checks it.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

from stellara_kit.rls import tenant_rls_statements

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCH_PATH = "SET search_path = pg_catalog, public, pg_temp"

#: names the definer functions act on: partitions of these parents, of this pattern
PARTITION_NAME = "^(raw_events_p|usage_dedup_e)[0-9]{8}$"


def _sql_text_array(statements: list[str]) -> str:
    return "ARRAY[" + ", ".join("'" + s.replace("'", "''") + "'" for s in statements) + "]"


#: RLS of a partition; ``{t}`` becomes the schema-qualified, quoted partition name
PARTITION_RLS = _sql_text_array(tenant_rls_statements("{t}"))

#: refuses (raises) unless p_name is one of our partitions; its oid otherwise. It only
#: reads the catalogue: the definer functions call it with their rights, it has none
IS_USAGE_PARTITION = f"""
CREATE OR REPLACE FUNCTION usage_partition_oid(p_name text) RETURNS oid
LANGUAGE plpgsql STABLE {SEARCH_PATH} AS $fn$
DECLARE found oid;
BEGIN
    IF p_name IS NULL OR p_name !~ '{PARTITION_NAME}' THEN
        RAISE EXCEPTION 'refused: % is not the name of a usage partition', p_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT child.oid INTO found
      FROM pg_catalog.pg_inherits i
      JOIN pg_catalog.pg_class child ON child.oid = i.inhrelid
     WHERE child.relname = p_name
       AND child.relnamespace = 'public'::regnamespace
       AND i.inhparent IN ('public.raw_events'::regclass, 'public.usage_dedup'::regclass)
       AND (p_name LIKE 'raw_events_p%') = (i.inhparent = 'public.raw_events'::regclass);
    IF found IS NULL THEN
        RAISE EXCEPTION 'refused: % is not a usage partition', p_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN found;
END $fn$
"""

SECURE_PARTITION = f"""
CREATE OR REPLACE FUNCTION usage_secure_partition(p_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER {SEARCH_PATH} AS $fn$
DECLARE statement text;
BEGIN
    PERFORM usage_partition_oid(p_name);
    FOREACH statement IN ARRAY {PARTITION_RLS} LOOP
        EXECUTE replace(statement, '{{t}}', format('public.%I', p_name));
    END LOOP;
END $fn$
"""

ENSURE_RAW_PARTITIONS = f"""
CREATE OR REPLACE FUNCTION usage_ensure_raw_partitions(p_days date[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER {SEARCH_PATH} AS $fn$
DECLARE
    d date;
    name text;
    created integer := 0;
BEGIN
    FOREACH d IN ARRAY p_days LOOP
        name := 'raw_events_p' || to_char(d, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(format('public.%I', name)) IS NOT NULL;
        PERFORM pg_advisory_xact_lock(hashtext('usage_partitions'));
        CONTINUE WHEN to_regclass(format('public.%I', name)) IS NOT NULL;
        EXECUTE format(
            'CREATE TABLE public.%I PARTITION OF public.raw_events FOR VALUES FROM (%L) TO (%L)',
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

DEDUP_EPOCH = f"""
CREATE OR REPLACE FUNCTION usage_dedup_epoch(p_day date, p_span integer) RETURNS date
LANGUAGE plpgsql SECURITY DEFINER {SEARCH_PATH} AS $fn$
DECLARE
    found date;
    new_start date;
    new_end date;
    next_start date;
    name text;
BEGIN
    IF p_span IS NULL OR p_span < 1 THEN
        RAISE EXCEPTION 'refused: an epoch spans at least one day, not %', p_span
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT start_day INTO found FROM public.usage_dedup_epochs
     WHERE start_day <= p_day AND end_day > p_day;
    IF found IS NOT NULL THEN
        RETURN found;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('usage_partitions'));
    SELECT start_day INTO found FROM public.usage_dedup_epochs
     WHERE start_day <= p_day AND end_day > p_day;
    IF found IS NOT NULL THEN
        RETURN found;
    END IF;
    -- a new epoch starts where the last one before p_day ended (or at p_day after
    -- a gap) and never overlaps a later one
    SELECT max(end_day) INTO new_start FROM public.usage_dedup_epochs WHERE end_day <= p_day;
    IF new_start IS NULL OR new_start + p_span <= p_day THEN
        new_start := p_day;
    END IF;
    SELECT min(start_day) INTO next_start FROM public.usage_dedup_epochs
     WHERE start_day > p_day;
    new_end := least(new_start + p_span, coalesce(next_start, new_start + p_span));
    name := 'usage_dedup_e' || to_char(new_start, 'YYYYMMDD');
    EXECUTE format(
        'CREATE TABLE public.%I PARTITION OF public.usage_dedup FOR VALUES FROM (%L) TO (%L)',
        name, new_start, new_end
    );
    PERFORM usage_secure_partition(name);
    INSERT INTO public.usage_dedup_epochs (start_day, end_day, partition_name)
    VALUES (new_start, new_end, name);
    RETURN new_start;
END $fn$
"""

DROP_EXPIRED_PARTITIONS = f"""
CREATE OR REPLACE FUNCTION usage_drop_expired_partitions(p_raw_before date, p_dedup_before date)
RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER {SEARCH_PATH} AS $fn$
DECLARE
    part record;
    dropped text[] := ARRAY[]::text[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('usage_partitions'));
    FOR part IN
        SELECT c.relname AS name FROM pg_catalog.pg_inherits i
          JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'public.raw_events'::regclass
           AND c.relnamespace = 'public'::regnamespace
           AND c.relname ~ '^raw_events_p[0-9]{{8}}$'
           AND to_date(substring(c.relname from 13), 'YYYYMMDD') + 1 <= p_raw_before
    LOOP
        PERFORM usage_partition_oid(part.name);
        EXECUTE format('DROP TABLE public.%I', part.name);
        dropped := dropped || part.name::text;
    END LOOP;
    FOR part IN
        SELECT start_day, partition_name AS name FROM public.usage_dedup_epochs
         WHERE end_day <= p_dedup_before
    LOOP
        -- the row must name the epoch's own partition, and that must be one of ours
        IF part.name IS DISTINCT FROM 'usage_dedup_e' || to_char(part.start_day, 'YYYYMMDD')
        THEN
            RAISE EXCEPTION 'refused: epoch % names %, not its partition', part.start_day, part.name
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF to_regclass(format('public.%I', part.name)) IS NOT NULL THEN
            PERFORM usage_partition_oid(part.name);
            EXECUTE format('DROP TABLE public.%I', part.name);
        END IF;
        DELETE FROM public.usage_dedup_epochs WHERE start_day = part.start_day;
        dropped := dropped || part.name::text;
    END LOOP;
    RETURN dropped;
END $fn$
"""

#: every role but the owner (the runtime role, PUBLIC) keeps only SELECT on the table
#: the definer functions trust
REVOKE_WRITES = """
DO $do$
DECLARE grantee_name text;
BEGIN
    REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
        ON public.usage_dedup_epochs FROM PUBLIC;
    FOR grantee_name IN
        SELECT DISTINCT grantee FROM information_schema.role_table_grants
         WHERE table_schema = 'public' AND table_name = 'usage_dedup_epochs'
           AND grantee NOT IN (current_user, 'PUBLIC')
    LOOP
        EXECUTE format(
            'REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER '
            'ON public.usage_dedup_epochs FROM %I',
            grantee_name
        );
    END LOOP;
END $do$
"""

OWNER_ONLY = ("usage_secure_partition(text)", "usage_partition_oid(text)")


def upgrade() -> None:
    op.execute(REVOKE_WRITES)
    op.execute(IS_USAGE_PARTITION)
    op.execute(SECURE_PARTITION)
    op.execute("DROP FUNCTION IF EXISTS usage_secure_partition_unchecked(text)")
    op.execute(ENSURE_RAW_PARTITIONS)
    op.execute(DEDUP_EPOCH)
    op.execute(DROP_EXPIRED_PARTITIONS)
    # the owner's helpers: default privileges granted the runtime role EXECUTE on them
    for function in OWNER_ONLY:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
        op.execute(
            f"""
            DO $do$
            DECLARE grantee_name text;
            BEGIN
                FOR grantee_name IN
                    SELECT DISTINCT grantee FROM information_schema.role_routine_grants
                     WHERE routine_schema = 'public'
                       AND routine_name = '{function.split("(")[0]}'
                       AND grantee NOT IN (current_user, 'PUBLIC')
                LOOP
                    EXECUTE format('REVOKE EXECUTE ON FUNCTION {function} FROM %I', grantee_name);
                END LOOP;
            END $do$
            """
        )


def downgrade() -> None:
    # The functions keep their checks (same signatures, same results for our own
    # partitions); 0003's downgrade needs the owner-only unchecked helper back.
    op.execute(
        f"""
        CREATE FUNCTION usage_secure_partition_unchecked(p_name text) RETURNS void
        LANGUAGE plpgsql SECURITY DEFINER {SEARCH_PATH} AS $fn$
        DECLARE statement text;
        BEGIN
            FOREACH statement IN ARRAY {PARTITION_RLS} LOOP
                EXECUTE replace(statement, '{{t}}', format('public.%I', p_name));
            END LOOP;
        END $fn$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION usage_secure_partition_unchecked(text) FROM PUBLIC")
    op.execute(
        """
        DO $do$
        DECLARE grantee_name text;
        BEGIN
            FOR grantee_name IN
                SELECT DISTINCT grantee FROM information_schema.role_table_grants
                 WHERE table_schema = 'public' AND table_name = 'usage_dedup_epochs'
                   AND privilege_type = 'SELECT' AND grantee NOT IN (current_user, 'PUBLIC')
            LOOP
                EXECUTE format(
                    'GRANT INSERT, UPDATE, DELETE ON public.usage_dedup_epochs TO %I',
                    grantee_name
                );
            END LOOP;
        END $do$
        """
    )
