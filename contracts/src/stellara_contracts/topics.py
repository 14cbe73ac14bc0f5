"""Topic names of the event catalogue.

Every topic has a dead-letter twin, ``<topic>.dlq``, where consumers put the
records they could not handle, with the error attached as headers.
"""

from __future__ import annotations

from typing import Final

TENANT_EVENTS: Final = "tenant.events"
TENANT_STATE: Final = "tenant.state"
USAGE_RECORDED: Final = "usage.recorded"
USAGE_ALERTS: Final = "usage.alerts"
ONBOARDING_EVENTS: Final = "onboarding.events"

ALL_TOPICS: Final[tuple[str, ...]] = (
    TENANT_EVENTS,
    TENANT_STATE,
    USAGE_RECORDED,
    USAGE_ALERTS,
    ONBOARDING_EVENTS,
)

#: Topics that keep only the newest record per key.
COMPACTED_TOPICS: Final[frozenset[str]] = frozenset({TENANT_STATE})

DLQ_SUFFIX: Final = ".dlq"


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``."""
    return f"{topic}{DLQ_SUFFIX}"
