"""Usage ingestion over HTTP: parse a batch, validate each event against the contract.

Three forms are accepted:
- ``application/json``: ``{"events": [...]}`` of ``{id?, metric, value, occurred_at,
  properties}`` (the documented shape), or a bare array of them, or one event;
- ``application/x-ndjson`` (or ``application/ndjson``): one such object a line;
- ``application/cloudevents-batch+json``: an array of full CloudEvents of type
  ``stellara.usage.recorded.v1``.

Each event is read by the contract's own decoder, on its JSON, exactly as
the consumers of ``usage.recorded`` read it: what the UsageRecorded JSON
Schema refuses (a number as text, an epoch timestamp, a value past the
bound of 1e15, a UUID without hyphens…) is refused here too, by index and
field. A plain event is the ``data`` of its envelope (plus an optional
``id``). The tenant is always the caller's: a plain event naming another
tenant, or a CloudEvent whose ``tenantid``, ``subject`` or
``data.tenant_id`` is another tenant's, is refused like any other invalid
event.

A plain event sent without an ``id`` gets one from the gateway. With an
``Idempotency-Key`` on the request, that id is derived, so a client can
resend the same request after a 503 (whose events may have been recorded)
and count nothing twice: ``uuid5(USAGE_ID_NAMESPACE, f"{tenant_id}/{key}/{n}")``
with ``n`` the event's position in the batch, from 0 (see
:func:`derived_event_id`). Without the header the id is random, and the
answer lists it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4, uuid5

import orjson

from gateway.schemas import EventError
from stellara_contracts import CloudEvent, EventDecodeError, decode_event, topics
from stellara_contracts.catalogue import event_type_of
from stellara_contracts.events import UsageRecordedEvent
from stellara_kit.problems import Problem

USAGE_TYPE = event_type_of(UsageRecordedEvent)
JSON_TYPES = frozenset({"application/json", ""})
NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/jsonlines"}
)
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"
ACCEPTED_TYPES = "application/json, application/x-ndjson, application/ndjson, " + CLOUDEVENTS_BATCH
#: the namespace of the ids derived from an ``Idempotency-Key`` (documented: clients may
#: compute them)
USAGE_ID_NAMESPACE = UUID("8f6d3c2e-1b4a-5e7f-9c0d-2a6b4e8f1c3d")
#: the longest ``Idempotency-Key`` taken, as at the services
IDEMPOTENCY_KEY_MAX = 255


def derived_event_id(tenant_id: UUID, idempotency_key: str, position: int) -> UUID:
    """The id of the event at ``position`` (from 0) of a batch sent with ``idempotency_key``."""
    return uuid5(USAGE_ID_NAMESPACE, f"{tenant_id}/{idempotency_key}/{position}")


@dataclass
class ParsedBatch:
    events: list[tuple[int, CloudEvent]] = field(default_factory=list)
    errors: list[EventError] = field(default_factory=list)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_usage_batch(
    body: bytes,
    content_type: str | None,
    tenant_id: UUID,
    *,
    max_events: int,
    source: str,
    traceparent: str | None = None,
    idempotency_key: str | None = None,
) -> ParsedBatch:
    """Validate a batch; raise a problem only when the request as a whole is unusable."""
    if idempotency_key is not None and not 0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
        raise Problem(
            f"An Idempotency-Key holds 1 to {IDEMPOTENCY_KEY_MAX} characters.",
            status=400,
            slug="bad-idempotency-key",
            title="Bad Idempotency-Key",
        )
    kind = media_type(content_type)
    if kind in NDJSON_TYPES:
        items = _ndjson_items(body)
    elif kind in JSON_TYPES or kind == CLOUDEVENTS_BATCH:
        items = _json_items(body)
    else:
        raise Problem(
            f"Send usage events as one of: {ACCEPTED_TYPES}.",
            status=415,
            slug="unsupported-media-type",
            title="Unsupported media type",
        )
    if not items:
        raise Problem(
            "The batch holds no event.", status=422, slug="empty-batch", title="Empty batch"
        )
    if len(items) > max_events:
        raise Problem(
            f"A batch holds at most {max_events} events ({len(items)} sent); split it.",
            status=413,
            slug="too-many-events",
            title="Too many events",
            max_events=max_events,
        )
    batch = ParsedBatch()
    for index, item in enumerate(items):
        try:
            if isinstance(item, _Unparsable):
                raise _Refused([f"not JSON: {item.reason}"])
            if kind == CLOUDEVENTS_BATCH:
                event = _cloudevent(item, tenant_id)
            else:
                default_id = (
                    derived_event_id(tenant_id, idempotency_key, index)
                    if idempotency_key is not None
                    else uuid4()
                )
                event = _plain_event(
                    item, tenant_id, source=source, traceparent=traceparent, default_id=default_id
                )
        except _Refused as refused:
            batch.errors.append(EventError(index=index, errors=refused.reasons))
            continue
        batch.events.append((index, event))
    return batch


class _Refused(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class _Unparsable:
    reason: str


_NOT_YOURS = "tenant: events may only be recorded for the caller's own tenant"


def _json_items(body: bytes) -> list[Any]:
    try:
        document = orjson.loads(body) if body.strip() else []
    except orjson.JSONDecodeError as exc:
        raise Problem(
            f"The body is not valid JSON: {exc}",
            status=400,
            slug="malformed-json",
            title="Malformed JSON",
        ) from exc
    if isinstance(document, dict) and "events" in document:
        # the documented batch object, {"events": [...]}
        if set(document) != {"events"} or not isinstance(document["events"], list):
            raise Problem(
                'Send {"events": [...]}: an object with only an `events` array.',
                status=422,
                slug="not-a-batch",
                title="Not a batch",
            )
        return document["events"]
    if isinstance(document, dict):
        return [document]
    if not isinstance(document, list):
        raise Problem(
            "Send a JSON array of events.", status=422, slug="not-a-batch", title="Not a batch"
        )
    return document


def _ndjson_items(body: bytes) -> list[Any]:
    items: list[Any] = []
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            items.append(_Unparsable(str(exc)))
    return items


def _decoded(envelope: dict[str, Any], *, plain: bool) -> CloudEvent:
    """The envelope read exactly as ``usage.recorded``'s consumers read it (the contract's
    decoder on its JSON), so that HTTP and Kafka accept the same events."""
    try:
        event = decode_event(topics.USAGE_RECORDED, orjson.dumps(envelope))
    except EventDecodeError as exc:
        raise _Refused(_messages(exc, plain=plain)) from None
    if not isinstance(event, UsageRecordedEvent):
        raise _Refused([f"type: must be {USAGE_TYPE}"])
    return event


def _messages(exc: EventDecodeError, *, plain: bool) -> list[str]:
    if not exc.errors:
        return [str(exc)]
    out = []
    for err in exc.errors:
        loc = [str(p) for p in err["loc"][1:]]  # after the union's tag
        if plain and loc[:1] == ["data"]:
            loc = loc[1:]  # a plain event is the data of its envelope
        message = err["msg"].removeprefix("Value error, ")
        out.append(f"{'.'.join(loc) or 'event'}: {message}")
    return out


def _plain_event(
    item: Any, tenant_id: UUID, *, source: str, traceparent: str | None, default_id: UUID
) -> CloudEvent:
    if not isinstance(item, dict):
        raise _Refused(["event: must be a JSON object"])
    tenant = str(tenant_id)
    claimed = item.get("tenant_id", tenant)
    if not _same_tenant(claimed, tenant_id):
        raise _Refused([_NOT_YOURS])
    data = {k: item[k] for k in _PLAIN_FIELDS if k in item}
    data["tenant_id"] = claimed
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": item["id"] if item.get("id") is not None else str(default_id),
        "source": source,
        "type": USAGE_TYPE,
        "subject": tenant,
        "tenantid": tenant,
        "data": data,
    }
    if traceparent is not None:
        envelope["traceparent"] = traceparent
    return _decoded(envelope, plain=True)


#: the fields of a plain event besides ``id`` and ``tenant_id`` (others are ignored, as in
#: the contract's data)
_PLAIN_FIELDS = ("metric", "value", "occurred_at", "properties")


def _same_tenant(claimed: Any, tenant_id: UUID) -> bool:
    try:
        return isinstance(claimed, str) and UUID(claimed) == tenant_id
    except ValueError:
        return False


def _cloudevent(item: Any, tenant_id: UUID) -> CloudEvent:
    if not isinstance(item, dict):
        raise _Refused(["event: must be a JSON object"])
    for name in ("tenantid", "subject"):
        if item.get(name) is not None and not _same_tenant(item.get(name), tenant_id):
            raise _Refused([_NOT_YOURS])
    data = item.get("data")
    if isinstance(data, dict) and not _same_tenant(
        data.get("tenant_id", str(tenant_id)), tenant_id
    ):
        raise _Refused([_NOT_YOURS])
    event = _decoded(item, plain=False)
    if event.tenantid != tenant_id:
        raise _Refused([_NOT_YOURS])
    return event
