"""Functions that run with a schema owner's rights, in every service's database.

A SECURITY DEFINER function does what its owner may do, for whoever may call
it. Each service's migrations are applied to a fresh database, and every such
function must pin its ``search_path`` (PostgreSQL's own advice: trusted schemas
only, ``pg_temp`` named last, else a caller's temporary table could stand in
for one of ours). What each function checks of the names it acts on is proved
in the owning service's tests (usage-svc: ``tests/test_isolation.py``).
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from onboarding_svc.migrate import MIGRATIONS as ONBOARDING
from stellara_kit.db import asyncpg_dsn
from stellara_kit.migrations import upgrade_async
from stellara_kit.testing import TestDatabase
from tenant_svc.migrate import MIGRATIONS as TENANT
from usage_svc.migrate import MIGRATIONS as USAGE

PINNED = ["search_path=pg_catalog, public, pg_temp"]

SERVICES = {"tenant-svc": TENANT, "usage-svc": USAGE, "onboarding-svc": ONBOARDING}


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_every_definer_function_pins_its_search_path(
    service: str, test_database: TestDatabase
) -> None:
    migrations: Path = SERVICES[service]
    await upgrade_async(migrations, test_database.owner_url)
    conn = await asyncpg.connect(asyncpg_dsn(test_database.owner_url))
    try:
        rows = await conn.fetch(
            "SELECT p.proname, p.proconfig FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner"
            " WHERE p.prosecdef AND r.rolname = current_user"
        )
    finally:
        await conn.close()
    unpinned = {row["proname"]: row["proconfig"] for row in rows if row["proconfig"] != PINNED}
    assert unpinned == {}
