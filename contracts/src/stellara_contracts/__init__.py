"""Stellara Tenancy event contracts.

The public language of the system: the CloudEvents envelope, the event
catalogue (``stellara_contracts.events``) with one discriminated union per
topic, topic names, and a producer helper for usage events.
"""

from stellara_contracts import events, topics
from stellara_contracts.binding import CLOUDEVENTS_JSON, record_headers
from stellara_contracts.catalogue import (
    EVENT_CLASSES,
    EVENT_TYPES,
    MALFORMED,
    TOPIC_EVENTS,
    UNKNOWN_TYPE,
    EventDecodeError,
    UnknownEventType,
    decode_event,
    new_event,
)
from stellara_contracts.envelope import CloudEvent, EventData, UnknownEvent

__all__ = [
    "CLOUDEVENTS_JSON",
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "MALFORMED",
    "TOPIC_EVENTS",
    "UNKNOWN_TYPE",
    "CloudEvent",
    "EventData",
    "EventDecodeError",
    "UnknownEvent",
    "UnknownEventType",
    "decode_event",
    "events",
    "new_event",
    "record_headers",
    "topics",
]
