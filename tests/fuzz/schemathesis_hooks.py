"""Schemathesis hooks for the gateway: how to put a batch of usage events on the wire as NDJSON."""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson", "application/ndjson")
def ndjson(context: schemathesis.SerializationContext, value: Any) -> dict[str, Any]:
    """One JSON document a line, as `POST /usage/events` reads `application/x-ndjson`."""
    items = value if isinstance(value, list) else [value]
    body = "\n".join(json.dumps(item, allow_nan=False) for item in items)
    return {"data": body.encode(), "headers": {"Content-Type": "application/x-ndjson"}}
