"""Schemathesis hooks for the gateway.

- how to put a batch of usage events on the wire as NDJSON;
- state a generator cannot know, kept out of schema-valid requests: an
  ``Idempotency-Key`` fresh for every request (reusing one with another body is
  refused, by design, with 422 ``idempotency-key-reused``), no made-up paging
  ``cursor`` (an opaque token the service wrote, refused as 400 ``bad-cursor``
  otherwise), a usage window whose ``to`` is after its ``from``, and a step
  the tenant's workflow has (the plan decides which; the status lists them).

Requests generated to break the schema are sent as they are.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any

import schemathesis
from hypothesis.internal import lambda_sources
from schemathesis import GenerationMode

from onboarding_svc.definitions import DEFAULT_WORKFLOW

_describe_lambda = lambda_sources._lambda_description


def _lambda_description(f: Any) -> str:
    """Hypothesis names a filter's lambda from its source, for the strategy's repr only; parsing
    schemathesis's largest module trips CPython 3.11 before 3.11.8 (gh-106905: "AST constructor
    recursion depth mismatch"), which aborted the operation's tests. A plain name instead."""
    try:
        return str(_describe_lambda(f))
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _lambda_description


@schemathesis.serializer("application/x-ndjson", "application/ndjson")
def ndjson(context: schemathesis.SerializationContext, value: Any) -> bytes:
    """One JSON document a line, as `POST /usage/events` reads `application/x-ndjson`."""
    items = value if isinstance(value, list) else [value]
    return "\n".join(json.dumps(item, allow_nan=False) for item in items).encode()


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time())
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        return None


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
        return
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            headers[name] = uuid.uuid4().hex
    query = case.query or {}
    query.pop("cursor", None)
    start, end = _instant(query.get("from")), _instant(query.get("to"))
    if start is not None and end is not None and end <= start:
        query["from"], query["to"] = query["to"], query["from"]
        if start == end:
            query.pop("to")
    body = case.body
    if case.path.endswith("/onboard/complete-step") and isinstance(body, dict):
        keys = DEFAULT_WORKFLOW.keys
        if body.get("step_key") not in keys:
            body["step_key"] = keys[len(str(body.get("step_key"))) % len(keys)]
