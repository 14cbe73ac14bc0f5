"""Reacting to events by type: one table ``{EventType: handler}`` per topic.

A service's ``events.py`` names, for each topic it consumes, the handler of each
event type it reacts to, and subscribes the table::

    runtime.subscribe_table(topics.ONBOARDING_EVENTS, {
        OnboardingCompletedEvent: partial(reactions.onboarding_completed, sink=sink),
    })

For an event of a type the table names, :func:`table_handler` opens the
tenant's transaction (``app.tenant_id`` set, so row-level security applies),
claims the event in the inbox and calls ``handler(session, event)`` inside that
transaction; the handler only flushes, the transaction commits when it returns.
A redelivered event was claimed before: it changes nothing. A type the table
does not name is skipped without a transaction and acknowledged like a handled
one (``stellara_events_handled_total{outcome="ok"}``; a type outside the
``stellara.`` namespace stays ``outcome="ignored"``, see ``stellara_kit.consumer``),
so a topic may carry more types than a consumer cares about.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts import CloudEvent
from stellara_kit.consumer import EventHandler
from stellara_kit.db import Database
from stellara_kit.inbox import Inbox

log = logging.getLogger(__name__)

#: ``handler(session, event)``: runs in the tenant's transaction, after the inbox claim
EventReaction = Callable[[AsyncSession, Any], Awaitable[object]]
#: the handler of each event type a consumer reacts to on one topic
EventTable = Mapping[type[CloudEvent], EventReaction]


def check_table(logical_topic: str, table: EventTable) -> None:
    """Refuse a table naming a type that does not travel on ``logical_topic``."""
    strays = sorted(t.__name__ for t in table if t.topic != logical_topic)
    if strays:
        raise ValueError(f"{', '.join(strays)} do not travel on {logical_topic}")


def table_handler(db: Database, inbox: Inbox, table: EventTable) -> EventHandler:
    """The consumer's handler: skip types ``table`` does not name, else claim and react."""
    reactions = dict(table)

    async def handle(event: CloudEvent) -> None:
        reaction = reactions.get(type(event))
        if reaction is None:
            return
        async with db.transaction(event.tenantid) as session:
            if not await inbox.claim(session, event.id):
                log.info("event %s (%s) was handled before", event.id, event.type)
                return
            await reaction(session, event)

    return handle
