"""usage-svc Kafka subscribers (thin: decode, open the transaction, call the service).

The hot path, ``usage.recorded``, has its own batch consumer (``ingest/consumer.py``).
Here: ``tenant.events`` membership changes, which the service meters itself as
``active_users`` — the member count after each change, recorded as a
UsageRecorded event through the outbox so it takes the same road (dedup,
aggregates, quotas) as every other measurement. Its id derives from the
membership event's id, so even a replayed membership event counts once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid5

from stellara_contracts import CloudEvent, new_event, topics
from stellara_contracts.events import (
    MemberAddedEvent,
    MemberRemovedEvent,
    UsageRecorded,
)
from stellara_kit.runtime import ServiceRuntime
from usage_svc import repository
from usage_svc.settings import Settings

ACTIVE_USERS = "active_users"
#: namespace of the ids of the active_users measurements derived from membership events
ACTIVE_USERS_NAMESPACE = UUID("6f1d3c2e-8a4b-4f5e-9c7d-2b1a0e9f8d7c")


def register(runtime: ServiceRuntime, settings: Settings) -> None:
    """Subscribe this service's handlers on the runtime's broker."""

    async def on_tenant_event(event: CloudEvent) -> None:
        """Membership changes become ``active_users`` measurements."""
        if isinstance(event, MemberAddedEvent | MemberRemovedEvent):
            await record_membership_change(runtime, settings, event)

    runtime.subscribe(topics.TENANT_EVENTS, on_tenant_event)


async def record_membership_change(
    runtime: ServiceRuntime, settings: Settings, event: MemberAddedEvent | MemberRemovedEvent
) -> None:
    assert runtime.db is not None and runtime.inbox is not None and runtime.outbox is not None
    tenant_id = event.data.tenant_id
    async with runtime.db.transaction(tenant_id) as session:
        if not await runtime.inbox.claim(session, event.id):
            return
        if isinstance(event, MemberAddedEvent):
            changed = await repository.add_member(
                session, tenant_id, event.data.user_id, str(event.data.role)
            )
        else:
            changed = await repository.remove_member(session, tenant_id, event.data.user_id)
        if not changed:
            return
        members = await repository.count_members(session, tenant_id)
        measurement = UsageRecorded(
            tenant_id=tenant_id,
            metric=ACTIVE_USERS,
            value=members,
            occurred_at=_measured_at(event.time, settings),
            properties={"cause": event.type.rsplit(".", 2)[-2]},
        )
        await runtime.outbox.add(
            session,
            new_event(
                measurement,
                source=settings.service_name,
                id=uuid5(ACTIVE_USERS_NAMESPACE, str(event.id)),
            ),
        )


def _measured_at(happened: datetime, settings: Settings) -> datetime:
    """When the member count changed; a membership event replayed from long ago (a new
    deployment reading history) is measured now, inside the deduplication window."""
    now = datetime.now(UTC)
    oldest = now - timedelta(days=settings.dedup_window_days) + timedelta(hours=1)
    return happened if oldest <= happened <= now else now
