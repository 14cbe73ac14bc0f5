from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest_asyncio
from sqlalchemy import Column, Integer, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import create_async_engine

from stellara_kit.db import Database
from stellara_kit.inbox import inbox_table
from stellara_kit.outbox import outbox_table, outbox_trigger_statements
from stellara_kit.rls import tenant_rls_statements
from stellara_kit.testing import TestDatabase

metadata = MetaData()
OUTBOX = outbox_table(metadata)
INBOX = inbox_table(metadata)
NOTES = Table(
    "notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("body", Text, nullable=False),
)


@dataclass
class KitDb:
    database: Database
    urls: TestDatabase
    outbox: Table = OUTBOX
    inbox: Table = INBOX
    notes: Table = NOTES


@pytest_asyncio.fixture
async def kit_db(test_database: TestDatabase) -> AsyncIterator[KitDb]:
    """The kit's tables created by the owner role; the Database connects as the runtime role."""
    owner = create_async_engine(test_database.owner_url)
    async with owner.begin() as conn:
        await conn.run_sync(metadata.create_all)
        for statement in outbox_trigger_statements() + tenant_rls_statements("notes"):
            await conn.exec_driver_sql(statement)
    await owner.dispose()
    database = Database(test_database.runtime_url, pool_size=2)
    try:
        yield KitDb(database, test_database)
    finally:
        await database.dispose()
