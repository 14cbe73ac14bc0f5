"""Stellara Tenancy event contracts.

The public language of the system: the CloudEvents envelope, the event
catalogue (``stellara_contracts.events``) with one discriminated union per
topic, topic names, and a producer helper for usage events.
"""

from stellara_contracts import events, topics
from stellara_contracts.catalogue import (
    EVENT_CLASSES,
    EVENT_TYPES,
    TOPIC_EVENTS,
    EventDecodeError,
    decode_event,
    new_event,
)
from stellara_contracts.envelope import CloudEvent, EventData, UnknownEvent

__all__ = [
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "TOPIC_EVENTS",
    "CloudEvent",
    "EventData",
    "EventDecodeError",
    "UnknownEvent",
    "decode_event",
    "events",
    "new_event",
    "topics",
]
