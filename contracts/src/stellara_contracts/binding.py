"""The CloudEvents Kafka protocol binding, structured content mode, as every producer applies it.

- value: the whole event as JSON (``application/cloudevents+json``): every
  attribute, ``traceparent`` included, travels inside it;
- header ``content-type: application/cloudevents+json`` on every record (the
  binding's mark of structured mode; consumers decode the value either way);
- key: the tenant id as text (36 bytes), partitioned with Kafka's default
  murmur2 partitioner, so one tenant's events stay in order on one partition.

No other header is set on an event record. Dead-letter records keep the
original's headers and add ``x-dlq-*`` (see ``stellara_kit.consumer``).
"""

from __future__ import annotations

from typing import Final

CLOUDEVENTS_JSON: Final = "application/cloudevents+json"
CONTENT_TYPE_HEADER: Final = "content-type"
_CONTENT_TYPE_VALUE: Final = CLOUDEVENTS_JSON.encode()


def record_headers() -> list[tuple[str, bytes]]:
    """The Kafka headers of one event record (a fresh list: clients may keep it)."""
    return [(CONTENT_TYPE_HEADER, _CONTENT_TYPE_VALUE)]
