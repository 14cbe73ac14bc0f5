"""Structured logging: one JSON object a line, carrying tenant, trace and request ids."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

tenant_id_var: ContextVar[str | None] = ContextVar("tenant_id", default=None)
trace_id_var: ContextVar[str | None] = ContextVar("trace_id", default=None)
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
#: the W3C trace context of the request or event being handled; events published meanwhile carry it
traceparent_var: ContextVar[str | None] = ContextVar("traceparent", default=None)
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def valid_traceparent(value: str | None) -> str | None:
    """The value when it is a W3C ``traceparent``, else None."""
    return value if value and _TRACEPARENT.match(value) else None


@contextlib.contextmanager
def traced(traceparent: str | None) -> Iterator[None]:
    """Within: logs carry the trace id, and events published carry the trace context
    (a value that is not a W3C ``traceparent`` counts as none)."""
    traceparent = valid_traceparent(traceparent)
    token_t = trace_id_var.set(trace_id_from_traceparent(traceparent))
    token_p = traceparent_var.set(traceparent)
    try:
        yield
    finally:
        trace_id_var.reset(token_t)
        traceparent_var.reset(token_p)


_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, var in (
            ("tenant_id", tenant_id_var),
            ("trace_id", trace_id_var),
            ("request_id", request_id_var),
        ):
            value = var.get()
            if value:
                entry[name] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, *, level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "faststream.access", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def trace_id_from_traceparent(traceparent: str | None) -> str | None:
    if traceparent and len(traceparent) >= 55:
        return traceparent[3:35]
    return None
