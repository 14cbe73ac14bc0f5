"""Usage ingestion over HTTP: parse a batch, validate each event against the contract.

Three forms are accepted:
- ``application/json``: an array of ``{id?, metric, value, occurred_at, properties}``;
- ``application/x-ndjson`` (or ``application/ndjson``): one such object a line;
- ``application/cloudevents-batch+json``: an array of full CloudEvents of type
  ``stellara.usage.recorded.v1``.

The tenant is always the caller's: a plain event naming another tenant, or a
CloudEvent whose ``tenantid`` or ``data.tenant_id`` is another tenant's, is
refused (by its index) like any other invalid event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import orjson
from pydantic import ValidationError

from gateway.schemas import EventError
from stellara_contracts import CloudEvent, new_event
from stellara_contracts.events import UsageRecorded, UsageRecordedEvent
from stellara_kit.problems import Problem

JSON_TYPES = frozenset({"application/json", ""})
NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/jsonlines"}
)
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"
ACCEPTED_TYPES = "application/json, application/x-ndjson, application/ndjson, " + CLOUDEVENTS_BATCH


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
) -> ParsedBatch:
    """Validate a batch; raise a problem only when the request as a whole is unusable."""
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
                event = _plain_event(item, tenant_id, source=source, traceparent=traceparent)
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


def _messages(exc: ValidationError, *, prefix: str = "") -> list[str]:
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "event"
        out.append(f"{prefix}{where}: {err['msg']}")
    return out


def _plain_event(item: Any, tenant_id: UUID, *, source: str, traceparent: str | None) -> CloudEvent:
    if not isinstance(item, dict):
        raise _Refused(["event: must be a JSON object"])
    reasons: list[str] = []
    claimed = item.get("tenant_id")
    if claimed is not None and str(claimed) != str(tenant_id):
        reasons.append(_NOT_YOURS)
    event_id = uuid4()
    if item.get("id") is not None:
        try:
            event_id = UUID(str(item["id"]))
        except ValueError:
            reasons.append("id: must be a UUID")
    try:
        data = UsageRecorded.model_validate(
            {
                "tenant_id": tenant_id,
                "metric": item.get("metric"),
                "value": item.get("value"),
                "occurred_at": item.get("occurred_at"),
                "properties": item.get("properties") or {},
            }
        )
    except ValidationError as exc:
        reasons.extend(_messages(exc))
        raise _Refused(reasons) from None
    if reasons:
        raise _Refused(reasons)
    return new_event(data, source=source, id=event_id, traceparent=traceparent)


def _cloudevent(item: Any, tenant_id: UUID) -> CloudEvent:
    if not isinstance(item, dict):
        raise _Refused(["event: must be a JSON object"])
    try:
        event = UsageRecordedEvent.model_validate(item)
    except ValidationError as exc:
        raise _Refused(_messages(exc)) from None
    if (
        event.tenantid != tenant_id
        or event.data.tenant_id != tenant_id
        or event.subject not in (None, str(tenant_id))
    ):
        raise _Refused([_NOT_YOURS])
    return event
