"""only the owner secures partitions, and only usage partitions

The partition helper runs with the owner's rights. Default privileges gave the
runtime role EXECUTE on it, which would let that role switch row-level security
on for any table the owner has (breaking, not leaking). Now the runtime role
cannot call it, and it refuses anything but a partition of raw_events or
usage_dedup.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER FUNCTION usage_secure_partition(text) RENAME TO usage_secure_partition_unchecked"
    )
    op.execute(
        """
        CREATE FUNCTION usage_secure_partition(p_name text) RETURNS void
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
        BEGIN
            IF NOT EXISTS (
                SELECT 1 FROM pg_inherits i
                  JOIN pg_class child ON child.oid = i.inhrelid
                  JOIN pg_class parent ON parent.oid = i.inhparent
                 WHERE child.relname = p_name
                   AND parent.relname IN ('raw_events', 'usage_dedup')
            ) THEN
                RAISE EXCEPTION '% is not a usage partition', p_name;
            END IF;
            PERFORM usage_secure_partition_unchecked(p_name);
        END $fn$
        """
    )
    for function in ("usage_secure_partition(text)", "usage_secure_partition_unchecked(text)"):
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
    op.execute(
        """
        DO $do$
        DECLARE grantee_name text;
        BEGIN
            FOR grantee_name IN
                SELECT DISTINCT grantee FROM information_schema.role_routine_grants
                 WHERE routine_name IN (
                     'usage_secure_partition', 'usage_secure_partition_unchecked'
                 )
                   AND grantee <> current_user
            LOOP
                EXECUTE format(
                    'REVOKE EXECUTE ON FUNCTION usage_secure_partition(text) FROM %I',
                    grantee_name
                );
                EXECUTE format(
                    'REVOKE EXECUTE ON FUNCTION usage_secure_partition_unchecked(text) FROM %I',
                    grantee_name
                );
            END LOOP;
        END $do$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION usage_secure_partition(text)")
    op.execute(
        "ALTER FUNCTION usage_secure_partition_unchecked(text) RENAME TO usage_secure_partition"
    )
