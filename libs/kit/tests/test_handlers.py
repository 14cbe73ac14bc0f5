"""Event tables on the real database: skip what the table does not name, claim, set the tenant."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts import CloudEvent, new_event
from stellara_contracts.events import (
    InvitationAcceptedEvent,
    MemberAdded,
    MemberAddedEvent,
    MemberRemovedEvent,
    Role,
    TenantUpdated,
)
from stellara_contracts.topics import ONBOARDING_EVENTS, TENANT_EVENTS
from stellara_kit.db import TENANT_SETTING
from stellara_kit.handlers import check_table, table_handler
from stellara_kit.inbox import Inbox


def member_added(tenant: UUID) -> CloudEvent:
    return new_event(MemberAdded(tenant_id=tenant, user_id="ada", role=Role.USER), source="t")


async def system_count(kit_db: Any, table: Any) -> int:
    async with kit_db.database.system_transaction() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


class Recorder:
    """A reaction that writes a note for its event and remembers what it saw."""

    def __init__(self, kit_db: Any) -> None:
        self.notes = kit_db.notes
        self.seen: list[tuple[UUID, str, list[str]]] = []

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        tenant = (await session.execute(text(f"SELECT current_setting('{TENANT_SETTING}')"))).one()
        visible = list((await session.execute(select(self.notes.c.body))).scalars())
        self.seen.append((event.id, tenant[0], sorted(visible)))
        await session.execute(
            insert(self.notes).values(tenant_id=event.tenantid, body=f"event {event.id}")
        )


class TestEventTable:
    async def test_a_type_the_table_does_not_name_is_skipped(self, kit_db: Any) -> None:
        react = Recorder(kit_db)
        handle = table_handler(
            kit_db.database, Inbox(kit_db.inbox, consumer="c"), {MemberAddedEvent: react}
        )
        tenant = uuid4()

        await handle(
            new_event(
                TenantUpdated(tenant_id=tenant, changes={"name": "Acme"}, version=2), source="t"
            )
        )

        assert react.seen == []
        # not even claimed: a later version that handles the type will see it
        assert await system_count(kit_db, kit_db.inbox) == 0
        assert await system_count(kit_db, kit_db.notes) == 0

    async def test_a_named_type_reaches_its_handler_only(self, kit_db: Any) -> None:
        added, removed = Recorder(kit_db), Recorder(kit_db)
        handle = table_handler(
            kit_db.database,
            Inbox(kit_db.inbox, consumer="c"),
            {MemberAddedEvent: added, MemberRemovedEvent: removed},
        )
        event = member_added(uuid4())

        await handle(event)

        assert [seen[0] for seen in added.seen] == [event.id]
        assert removed.seen == []

    async def test_a_redelivered_event_changes_nothing(self, kit_db: Any) -> None:
        react = Recorder(kit_db)
        handle = table_handler(
            kit_db.database, Inbox(kit_db.inbox, consumer="c"), {MemberAddedEvent: react}
        )
        event = member_added(uuid4())

        await handle(event)
        await handle(event)

        assert len(react.seen) == 1
        assert await system_count(kit_db, kit_db.notes) == 1

    async def test_a_failed_reaction_is_not_claimed_and_runs_again(self, kit_db: Any) -> None:
        react, failures = Recorder(kit_db), [RuntimeError("database said no")]

        async def flaky(session: AsyncSession, event: CloudEvent) -> None:
            await react(session, event)
            if failures:
                raise failures.pop()

        handle = table_handler(
            kit_db.database, Inbox(kit_db.inbox, consumer="c"), {MemberAddedEvent: flaky}
        )
        event = member_added(uuid4())

        with pytest.raises(RuntimeError):
            await handle(event)
        await handle(event)

        assert len(react.seen) == 2
        assert await system_count(kit_db, kit_db.notes) == 1  # the first try rolled back

    async def test_the_reaction_runs_as_the_events_tenant(self, kit_db: Any) -> None:
        mine, other = uuid4(), uuid4()
        for tenant, body in ((mine, "mine"), (other, "other")):
            async with kit_db.database.transaction(tenant) as session:
                await session.execute(insert(kit_db.notes).values(tenant_id=tenant, body=body))
        react = Recorder(kit_db)
        handle = table_handler(
            kit_db.database, Inbox(kit_db.inbox, consumer="c"), {MemberAddedEvent: react}
        )

        await handle(member_added(mine))

        [(_, tenant_setting, visible)] = react.seen
        assert tenant_setting == str(mine)
        assert visible == ["mine"]  # row-level security hides the other tenant's rows


async def nothing(session: AsyncSession, event: CloudEvent) -> None:
    pass


class TestCheckTable:
    def test_a_table_of_the_topics_types_is_accepted(self) -> None:
        check_table(TENANT_EVENTS, {MemberAddedEvent: nothing, MemberRemovedEvent: nothing})

    def test_a_type_of_another_topic_is_refused(self) -> None:
        with pytest.raises(ValueError, match="InvitationAcceptedEvent do not travel on"):
            check_table(TENANT_EVENTS, {InvitationAcceptedEvent: nothing})
        check_table(ONBOARDING_EVENTS, {InvitationAcceptedEvent: nothing})
