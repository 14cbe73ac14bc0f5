"""Usage batches over HTTP (``ingestion.parse_usage_batch``): which requests are refused as a
whole (status and problem slug), and which events of a batch are accepted or refused by index."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest

from gateway.ingestion import USAGE_ID_NAMESPACE, derived_event_id, parse_usage_batch
from stellara_kit.problems import Problem

TENANT = UUID("55555555-5555-4555-8555-555555555555")
OTHER = UUID("66666666-6666-4666-8666-666666666666")
AT = "2026-12-01T10:00:00Z"
MAX_EVENTS = 3


def plain(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"metric": "api_calls", "value": 1, "occurred_at": AT}
    item.update(changes)
    return {k: v for k, v in item.items() if v is not None}


def cloudevent(**changes: Any) -> dict[str, Any]:
    data = {"tenant_id": str(TENANT), "metric": "api_calls", "value": 1, "occurred_at": AT}
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid4()),
        "source": "billing",
        "type": "stellara.usage.recorded.v1",
        "tenantid": str(TENANT),
        "data": data,
    }
    for name, value in changes.items():
        if name.startswith("data_"):
            data[name[5:]] = value
        else:
            event[name] = value
    return event


def parse(body: Any, content_type: str | None = "application/json", **options: Any) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_usage_batch(
        raw, content_type, TENANT, max_events=MAX_EVENTS, source="gateway", **options
    )


@pytest.mark.parametrize(
    ("body", "content_type", "options", "status", "slug"),
    [
        pytest.param([plain()], "text/plain", {}, 415, "unsupported-media-type", id="text/plain"),
        pytest.param([plain()], "application/xml", {}, 415, "unsupported-media-type", id="xml"),
        pytest.param(b"{nope", "application/json", {}, 400, "malformed-json", id="not JSON"),
        pytest.param(b"", "application/json", {}, 422, "empty-batch", id="empty body"),
        pytest.param([], "application/json", {}, 422, "empty-batch", id="empty array"),
        pytest.param({"events": []}, "application/json", {}, 422, "empty-batch", id="no events"),
        pytest.param(b"\n\n", "application/x-ndjson", {}, 422, "empty-batch", id="blank NDJSON"),
        pytest.param("text", "application/json", {}, 422, "not-a-batch", id="a JSON string"),
        pytest.param(42, "application/json", {}, 422, "not-a-batch", id="a JSON number"),
        pytest.param(
            {"events": [plain()], "extra": 1}, "application/json", {}, 422, "not-a-batch",
            id="events beside other fields",
        ),
        pytest.param(
            {"events": plain()}, "application/json", {}, 422, "not-a-batch", id="events not a list"
        ),
        pytest.param(
            [plain()] * (MAX_EVENTS + 1), "application/json", {}, 413, "too-many-events",
            id="one event too many",
        ),
        pytest.param(
            [plain()], "application/json", {"idempotency_key": ""}, 400, "bad-idempotency-key",
            id="empty idempotency key",
        ),
        pytest.param(
            [plain()], "application/json", {"idempotency_key": "k" * 256}, 400,
            "bad-idempotency-key", id="idempotency key too long",
        ),
    ],
)  # fmt: skip
def test_an_unusable_request_is_refused_as_a_whole(
    body: Any, content_type: str, options: dict[str, Any], status: int, slug: str
) -> None:
    with pytest.raises(Problem) as refused:
        parse(body, content_type, **options)
    assert (refused.value.status, refused.value.slug) == (status, slug)


@pytest.mark.parametrize(
    ("body", "content_type", "accepted", "refused"),
    [
        pytest.param({"events": [plain(), plain()]}, "application/json", [0, 1], {}, id="batch object"),
        pytest.param([plain(), plain()], "application/json", [0, 1], {}, id="bare array"),
        pytest.param(plain(), "application/json", [0], {}, id="one event"),
        pytest.param([plain()], "application/json; charset=utf-8", [0], {}, id="with a charset"),
        pytest.param([plain()], None, [0], {}, id="no content type"),
        pytest.param([plain()], "Application/JSON", [0], {}, id="media type in capitals"),
        pytest.param(
            b'{"metric":"api_calls","value":1,"occurred_at":"2026-12-01T10:00:00Z"}\n\n'
            b"{broken\n"
            b'{"metric":"api_calls","value":2,"occurred_at":"2026-12-01T10:00:00Z"}\n',
            "application/x-ndjson",
            [0, 2],
            {1: "not JSON"},
            id="NDJSON with a broken line",
        ),
        pytest.param(
            [plain(value="1"), plain(occurred_at=1764583200), plain()],
            "application/json",
            [2],
            {0: "value", 1: "occurred_at"},
            id="refusals by index and field",
        ),
        pytest.param(
            [plain(value=1e16), plain(metric="Bad Metric"), plain(tenant_id=str(OTHER))],
            "application/json",
            [],
            {0: "value", 1: "metric", 2: "tenant"},
            id="bound, pattern, another tenant",
        ),
        pytest.param([plain(tenant_id=str(TENANT))], "application/json", [0], {}, id="own tenant named"),
        pytest.param([plain(tenant_id="acme")], "application/json", [], {0: "tenant"}, id="tenant by slug"),
        pytest.param(["not an object"], "application/json", [], {0: "event"}, id="not an object"),
        pytest.param(
            [cloudevent(), cloudevent(tenantid=str(OTHER)), cloudevent(data_tenant_id=str(OTHER))],
            "application/cloudevents-batch+json",
            [0],
            {1: "tenant", 2: "tenant"},
            id="CloudEvents naming another tenant",
        ),
        pytest.param(
            [cloudevent(subject=str(OTHER)), cloudevent(type="stellara.tenant.created.v1")],
            "application/cloudevents-batch+json",
            [],
            {0: "tenant", 1: "type"},
            id="CloudEvents: other subject, other type",
        ),
    ],
)  # fmt: skip
def test_each_event_of_a_batch_is_judged_by_the_contract(
    body: Any, content_type: str, accepted: list[int], refused: dict[int, str]
) -> None:
    batch = parse(body, content_type)
    assert [index for index, _ in batch.events] == accepted
    assert [e.index for e in batch.errors] == sorted(refused)
    for error in batch.errors:
        assert error.errors[0].startswith(refused[error.index]), error.errors
    for _, event in batch.events:
        assert event.tenantid == TENANT
        assert event.data.tenant_id == TENANT


def test_a_plain_event_is_the_data_of_an_envelope_from_the_gateway() -> None:
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    batch = parse([plain(properties={"route": "/x"}, unrelated="dropped")], traceparent=trace)
    [(_, event)] = batch.events
    assert (event.source, event.subject, event.traceparent) == ("gateway", str(TENANT), trace)
    assert event.data.properties == {"route": "/x"}
    assert event.key == str(TENANT).encode()


@pytest.mark.parametrize(
    ("items", "key", "expected"),
    [
        pytest.param(
            [plain(), plain()],
            "retry-7",
            [derived_event_id(TENANT, "retry-7", 0), derived_event_id(TENANT, "retry-7", 1)],
            id="derived from the key and the position",
        ),
        pytest.param(
            [plain(id="0f8fad5b-d9cb-469f-a165-70867728950e"), plain()],
            "retry-7",
            [UUID("0f8fad5b-d9cb-469f-a165-70867728950e"), derived_event_id(TENANT, "retry-7", 1)],
            id="an id sent is kept",
        ),
    ],
)
def test_event_ids_with_an_idempotency_key_are_the_same_on_every_resend(
    items: list[dict[str, Any]], key: str, expected: list[UUID]
) -> None:
    first = [event.id for _, event in parse(items, idempotency_key=key).events]
    again = [event.id for _, event in parse(items, idempotency_key=key).events]
    assert first == again == expected


def test_the_derived_id_is_the_documented_uuid5() -> None:
    import uuid

    assert derived_event_id(TENANT, "k", 3) == uuid.uuid5(USAGE_ID_NAMESPACE, f"{TENANT}/k/3")


def test_without_an_idempotency_key_each_send_gets_new_ids() -> None:
    first = [event.id for _, event in parse([plain()]).events]
    again = [event.id for _, event in parse([plain()]).events]
    assert first != again
