"""Round trips for every event of the catalogue, and forward compatibility."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import pytest
from pydantic import BaseModel

from stellara_contracts import (
    EVENT_CLASSES,
    MALFORMED,
    TOPIC_EVENTS,
    UNKNOWN_TYPE,
    CloudEvent,
    EventDecodeError,
    UnknownEvent,
    UnknownEventType,
    decode_event,
    new_event,
    topics,
)
from stellara_contracts.catalogue import data_class_of, event_type_of
from stellara_contracts.events import TenantCreated, UsageRecorded


def example_payload(model: type[BaseModel]) -> dict[str, Any]:
    """Build a payload from the first example of every field (nested models too)."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if field.examples:
            out[name] = field.examples[0]
        elif (
            getattr(annotation, "__origin__", None) is list
            and isinstance(annotation.__args__[0], type)  # type: ignore[union-attr]
            and issubclass(annotation.__args__[0], BaseModel)  # type: ignore[union-attr]
        ):
            out[name] = [example_payload(annotation.__args__[0])]  # type: ignore[union-attr]
    out["tenant_id"] = str(uuid4())
    return out


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=event_type_of)
def test_every_event_round_trips_through_json(cls: type[CloudEvent]) -> None:
    data = data_class_of(cls).model_validate(example_payload(data_class_of(cls)))
    event = new_event(data, source="test")

    decoded = decode_event(cls.topic, event.to_json())

    assert type(decoded) is cls
    assert decoded == event
    assert decoded.type == event_type_of(cls)
    assert decoded.key == str(data.tenant_id).encode()
    assert decoded.subject == str(data.tenant_id)


def test_every_topic_has_events_and_every_event_one_topic() -> None:
    assert all(TOPIC_EVENTS[t] for t in topics.ALL_TOPICS)
    assert sum(len(v) for v in TOPIC_EVENTS.values()) == len(EVENT_CLASSES)


class TestTypes:
    def envelope(self, kind: str, **extra: Any) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": str(uuid4()),
            "source": "future-svc",
            "type": kind,
            "tenantid": str(uuid4()),
            "data": {"anything": 1},
        } | extra

    @pytest.mark.parametrize(
        "kind",
        ["stellara.tenant.renamed.v1", "stellara.tenant.created.v2", "stellara.tenant.craeted.v1"],
    )
    def test_an_unknown_type_in_our_namespace_is_refused_as_unknown_type(self, kind: str) -> None:
        with pytest.raises(UnknownEventType) as info:
            decode_event(topics.TENANT_EVENTS, json.dumps(self.envelope(kind)))
        assert info.value.reason == UNKNOWN_TYPE
        assert kind in str(info.value)

    def test_a_type_outside_our_namespace_decodes_to_unknown_event(self) -> None:
        # another system's event: only its type is read, the rest is not ours to judge
        raw = {"type": "com.example.order.placed", "id": 42, "data": None}
        event = decode_event(topics.TENANT_EVENTS, json.dumps(raw))
        assert isinstance(event, UnknownEvent)
        assert event.type == "com.example.order.placed"

    @pytest.mark.parametrize("kind", [None, 5, ["stellara.tenant.created.v1"], {"a": 1}])
    def test_a_missing_or_non_text_type_is_malformed(self, kind: Any) -> None:
        raw = self.envelope("x")
        raw.pop("type") if kind is None else raw.update(type=kind)
        with pytest.raises(EventDecodeError) as info:
            decode_event(topics.TENANT_EVENTS, json.dumps(raw))
        assert info.value.reason == MALFORMED

    def test_a_known_type_on_another_topic_is_an_unknown_type_there(self) -> None:
        tenant = uuid4()
        event = new_event(
            UsageRecorded(
                tenant_id=tenant, metric="api_calls", value=1, occurred_at="2026-12-01T00:00:00Z"
            ),  # type: ignore[arg-type]
            source="t",
        )
        with pytest.raises(UnknownEventType):
            decode_event(topics.TENANT_EVENTS, event.to_json())

    def test_fields_added_by_a_newer_producer_are_ignored(self) -> None:
        event = new_event(
            TenantCreated(
                tenant_id=uuid4(),
                slug="acme",
                name="Acme",
                plan="free",
                created_at="2026-12-01T00:00:00Z",  # type: ignore[arg-type]
            ),
            source="t",
        )
        raw = json.loads(event.to_json())
        raw["data"]["colour"] = "blue"
        raw["newattribute"] = "x"
        assert decode_event(topics.TENANT_EVENTS, json.dumps(raw)) == event


class TestMalformedRecords:
    @pytest.mark.parametrize(
        "raw",
        [b"not json", b"[]", b"{}", b'{"type": "stellara.usage.recorded.v1"}'],
    )
    def test_malformed_records_raise_decode_error_with_reason(self, raw: bytes) -> None:
        with pytest.raises(EventDecodeError) as info:
            decode_event(topics.USAGE_RECORDED, raw)
        assert str(info.value)

    def test_known_type_with_bad_payload_names_the_field(self) -> None:
        event = new_event(
            UsageRecorded(
                tenant_id=uuid4(), metric="api_calls", value=1, occurred_at="2026-12-01T00:00:00Z"
            ),  # type: ignore[arg-type]
            source="t",
        )
        raw = json.loads(event.to_json())
        raw["data"]["value"] = "lots"
        with pytest.raises(EventDecodeError, match="value"):
            decode_event(topics.USAGE_RECORDED, json.dumps(raw))

    def test_naive_timestamps_are_refused(self) -> None:
        with pytest.raises(ValueError, match="time zone"):
            UsageRecorded(tenant_id=uuid4(), metric="m", value=1, occurred_at="2026-12-01T00:00:00")  # type: ignore[arg-type]


def test_new_event_refuses_a_payload_outside_the_catalogue() -> None:
    class Stray(UsageRecorded):
        pass

    with pytest.raises(TypeError):
        new_event(
            Stray(tenant_id=uuid4(), metric="m", value=1, occurred_at="2026-12-01T00:00:00Z"),
            source="t",
        )  # type: ignore[arg-type]
