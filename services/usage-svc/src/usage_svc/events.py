"""usage-svc's event table for ``tenant.events``.

Membership changes become ``active_users`` measurements
(``service.record_membership_change``); kit skips the other types and claims
each handled event in the inbox in the transaction of its effect
(``stellara_kit.handlers``). The hot path, ``usage.recorded``, has its own batch
consumer (``ingest/consumer.py``): it stores whole batches in one transaction
with its own deduplication, which one event at a time cannot do.
"""

from __future__ import annotations

from functools import partial

from stellara_contracts import topics
from stellara_contracts.events import MemberAddedEvent, MemberRemovedEvent
from stellara_kit.runtime import ServiceRuntime
from usage_svc import service
from usage_svc.settings import Settings


def register(runtime: ServiceRuntime, settings: Settings) -> None:
    """Subscribe this service's event table on the runtime's broker."""
    assert runtime.sink is not None
    measure = partial(service.record_membership_change, sink=runtime.sink, settings=settings)
    runtime.subscribe_table(
        topics.TENANT_EVENTS, {MemberAddedEvent: measure, MemberRemovedEvent: measure}
    )
