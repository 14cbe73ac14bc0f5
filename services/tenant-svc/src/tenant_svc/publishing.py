"""Events leave through the outbox only, inside the transaction of the change."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts import EventData, new_event
from stellara_kit.outbox import Outbox


class EventSink:
    """Wraps payloads in their envelope and adds them to the caller's transaction."""

    def __init__(self, outbox: Outbox, *, source: str) -> None:
        self.outbox = outbox
        self.source = source

    async def publish(self, session: AsyncSession, *payloads: EventData) -> None:
        await self.outbox.add_all(
            session, [new_event(payload, source=self.source) for payload in payloads]
        )
