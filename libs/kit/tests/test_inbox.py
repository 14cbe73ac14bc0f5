"""The inbox: the same event delivered twice has one effect."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import func, insert, select

from stellara_kit.inbox import Inbox


async def handle(kit_db: Any, inbox: Inbox, tenant: UUID, event_id: UUID) -> bool:
    async with kit_db.database.transaction(tenant) as session:
        if not await inbox.claim(session, event_id):
            return False
        await session.execute(insert(kit_db.notes).values(tenant_id=tenant, body=str(event_id)))
        return True


async def count_notes(kit_db: Any) -> int:
    async with kit_db.database.system_transaction() as session:
        return int(
            (await session.execute(select(func.count()).select_from(kit_db.notes))).scalar_one()
        )


class TestInbox:
    async def test_same_event_twice_has_one_effect(self, kit_db: Any) -> None:
        inbox, tenant, event = Inbox(kit_db.inbox, consumer="c"), uuid4(), uuid4()
        assert await handle(kit_db, inbox, tenant, event) is True
        assert await handle(kit_db, inbox, tenant, event) is False
        assert await count_notes(kit_db) == 1

    async def test_rolled_back_handling_is_not_recorded(self, kit_db: Any) -> None:
        inbox, tenant, event = Inbox(kit_db.inbox, consumer="c"), uuid4(), uuid4()
        try:
            async with kit_db.database.transaction(tenant) as session:
                assert await inbox.claim(session, event)
                raise RuntimeError("handler crashed")
        except RuntimeError:
            pass
        assert await handle(kit_db, inbox, tenant, event) is True
        assert await count_notes(kit_db) == 1

    async def test_consumers_have_separate_inboxes(self, kit_db: Any) -> None:
        tenant, event = uuid4(), uuid4()
        assert await handle(kit_db, Inbox(kit_db.inbox, consumer="one"), tenant, event)
        assert await handle(kit_db, Inbox(kit_db.inbox, consumer="two"), tenant, event)
