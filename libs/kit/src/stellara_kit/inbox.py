"""The inbox: handled event ids, recorded in the handler's own transaction.

``await inbox.claim(session, event.id)`` returns False when the event was
handled before; the handler then does nothing. Because the id is written in
the same transaction as the effect, a redelivered event changes nothing, and
an event whose handling rolled back is handled again. Services do not call it
themselves: their event tables (``stellara_kit.handlers``) claim for them.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Column, DateTime, MetaData, PrimaryKeyConstraint, Table, Text, func
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

INBOX_TABLE = "inbox"


def inbox_table(metadata: MetaData) -> Table:
    """Declare the ``inbox`` table on a service's metadata (so Alembic sees it)."""
    return Table(
        INBOX_TABLE,
        metadata,
        Column("consumer", Text, nullable=False),
        Column("event_id", PG_UUID(as_uuid=True), nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id"),
    )


class Inbox:
    def __init__(self, table: Table, *, consumer: str) -> None:
        self.table = table
        self.consumer = consumer

    async def claim(self, session: AsyncSession, event_id: UUID) -> bool:
        """Record ``event_id`` as handled; False if it already was."""
        statement = (
            insert(self.table)
            .values(consumer=self.consumer, event_id=event_id)
            .on_conflict_do_nothing()
            .returning(self.table.c.event_id)
        )
        result = await session.execute(statement)
        return result.first() is not None
