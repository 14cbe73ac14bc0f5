"""Row-level security for tenant-scoped tables, for migrations to call.

A table gets RLS enabled **and forced** (so even its owner is filtered) and one
policy: a row is visible and writable when its ``tenant_id`` equals the
transaction's ``app.tenant_id``, or when the transaction declared itself a
system task. An unset tenant compares as NULL, so it fails closed.
"""

from __future__ import annotations

from collections.abc import Callable

from stellara_kit.db import SYSTEM_SETTING, TENANT_SETTING

POLICY = "tenant_isolation"


def tenant_rls_statements(table: str, *, column: str = "tenant_id") -> list[str]:
    condition = (
        f"({column} = NULLIF(current_setting('{TENANT_SETTING}', true), '')::uuid "
        f"OR current_setting('{SYSTEM_SETTING}', true) = 'on')"
    )
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS {POLICY} ON {table}",
        f"CREATE POLICY {POLICY} ON {table} USING {condition} WITH CHECK {condition}",
    ]


def enable_tenant_rls(
    execute: Callable[[str], object], table: str, *, column: str = "tenant_id"
) -> None:
    """Enable and force RLS on ``table``; ``execute`` is ``op.execute`` in a migration."""
    for statement in tenant_rls_statements(table, column=column):
        execute(statement)


def disable_tenant_rls(execute: Callable[[str], object], table: str) -> None:
    execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
    execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
