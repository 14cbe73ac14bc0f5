"""The catalogue: which event types exist, on which topic, and how to decode them."""

from __future__ import annotations

from typing import Annotated, Any, Final, Union
from uuid import uuid4

from pydantic import Discriminator, Tag, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from stellara_contracts import events as ev
from stellara_contracts import topics
from stellara_contracts.envelope import NAMESPACE, CloudEvent, EventData, UnknownEvent

#: dead-letter reasons of records that are no event of their topic (``x-dlq-reason``)
MALFORMED: Final = "malformed"
UNKNOWN_TYPE: Final = "unknown_type"

#: every concrete envelope class, in catalogue order
EVENT_CLASSES: tuple[type[CloudEvent], ...] = (
    ev.TenantCreatedEvent,
    ev.TenantUpdatedEvent,
    ev.TenantActivatedEvent,
    ev.TenantSuspendedEvent,
    ev.TenantDeletedEvent,
    ev.TenantPlanChangedEvent,
    ev.TenantConfigChangedEvent,
    ev.MemberAddedEvent,
    ev.MemberRemovedEvent,
    ev.TenantSnapshotEvent,
    ev.UsageRecordedEvent,
    ev.UsageThresholdReachedEvent,
    ev.QuotaExceededEvent,
    ev.BillingPeriodClosedEvent,
    ev.OnboardingStartedEvent,
    ev.OnboardingStepCompletedEvent,
    ev.InvitationSentEvent,
    ev.InvitationAcceptedEvent,
    ev.InvitationExpiredEvent,
    ev.OnboardingCompletedEvent,
)


def event_type_of(cls: type[CloudEvent]) -> str:
    default = cls.model_fields["type"].default
    assert isinstance(default, str)
    return default


def data_class_of(cls: type[CloudEvent]) -> type[EventData]:
    annotation = cls.model_fields["data"].annotation
    assert isinstance(annotation, type) and issubclass(annotation, EventData)
    return annotation


EVENT_TYPES: dict[str, type[CloudEvent]] = {event_type_of(c): c for c in EVENT_CLASSES}
_BY_DATA: dict[type[EventData], type[CloudEvent]] = {data_class_of(c): c for c in EVENT_CLASSES}

TOPIC_EVENTS: dict[str, tuple[type[CloudEvent], ...]] = {
    topic: tuple(c for c in EVENT_CLASSES if c.topic == topic) for topic in topics.ALL_TOPICS
}

_UNKNOWN = "__unknown__"


def _union_for(topic: str) -> Any:
    known = {event_type_of(c) for c in TOPIC_EVENTS[topic]}

    def tag(value: Any) -> str:
        kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
        return kind if isinstance(kind, str) and kind in known else _UNKNOWN

    members = [Annotated[c, Tag(event_type_of(c))] for c in TOPIC_EVENTS[topic]]
    members.append(Annotated[UnknownEvent, Tag(_UNKNOWN)])
    return Annotated[Union[tuple(members)], Discriminator(tag)]  # noqa: UP007


#: one discriminated union per topic; unknown ``type`` values decode to UnknownEvent
TenantEvent = _union_for(topics.TENANT_EVENTS)
TenantStateEvent = _union_for(topics.TENANT_STATE)
UsageEvent = _union_for(topics.USAGE_RECORDED)
UsageAlertEvent = _union_for(topics.USAGE_ALERTS)
OnboardingEvent = _union_for(topics.ONBOARDING_EVENTS)

_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    topics.TENANT_EVENTS: TypeAdapter(TenantEvent),
    topics.TENANT_STATE: TypeAdapter(TenantStateEvent),
    topics.USAGE_RECORDED: TypeAdapter(UsageEvent),
    topics.USAGE_ALERTS: TypeAdapter(UsageAlertEvent),
    topics.ONBOARDING_EVENTS: TypeAdapter(OnboardingEvent),
}


class EventDecodeError(ValueError):
    """A record that is not a valid event of its topic (goes to the DLQ with ``reason``)."""

    reason: str = MALFORMED

    def __init__(self, message: str, errors: list[ErrorDetails] | None = None) -> None:
        super().__init__(message)
        #: pydantic's errors, when validation found them (``loc`` starts with the type)
        self.errors = errors or []


class UnknownEventType(EventDecodeError):
    """A type in the catalogue's namespace that its topic does not carry (a typo, a newer
    version, another topic's event): dead-lettered as ``unknown_type``, never skipped."""

    reason = UNKNOWN_TYPE


def decode_event(topic: str, raw: bytes | str) -> CloudEvent | UnknownEvent:
    """Decode one record of ``topic``: the one rule every consumer applies.

    Known types come back as their envelope class, validated against the
    contract; a type outside the ``stellara.`` namespace comes back as
    :class:`UnknownEvent` (ignore it); a ``stellara.`` type the topic does
    not carry raises :class:`UnknownEventType`; anything else raises
    :class:`EventDecodeError` with the reason.
    """
    adapter = _ADAPTERS.get(topic)
    if adapter is None:
        raise EventDecodeError(f"unknown topic {topic!r}")
    try:
        event: CloudEvent | UnknownEvent = adapter.validate_json(raw)
    except ValidationError as exc:
        raise EventDecodeError(_describe(exc), exc.errors()) from exc
    if isinstance(event, UnknownEvent) and event.type.startswith(NAMESPACE):
        raise UnknownEventType(
            f"type: {event.type!r} is not an event of {topic} "
            f"(known: {', '.join(event_type_of(c) for c in TOPIC_EVENTS[topic])})"
        )
    return event


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = err["loc"]
        if loc and (loc[0] in EVENT_TYPES or loc[0] == _UNKNOWN):
            loc = loc[1:]  # the union's tag: the type, said once already
        where = ".".join(str(p) for p in loc) or "record"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def new_event(
    data: EventData,
    *,
    source: str,
    traceparent: str | None = None,
    **envelope: Any,
) -> CloudEvent:
    """Wrap a payload in its envelope: type, tenant, subject and a fresh id are filled in."""
    cls = _BY_DATA.get(type(data))
    if cls is None:
        raise TypeError(f"{type(data).__name__} is not an event of the catalogue")
    envelope.setdefault("id", uuid4())
    return cls(
        specversion="1.0",
        source=source,
        tenantid=data.tenant_id,
        subject=str(data.tenant_id),
        traceparent=traceparent,
        data=data,
        **envelope,
    )
