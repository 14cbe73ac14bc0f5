"""Consuming events reliably: handle, then commit; retry with backoff; dead-letter.

``subscribe_events`` registers a FastStream subscriber with manual
acknowledgement (auto-commit off). For each record it decodes the event,
runs the handler and only then commits the offset. A handler that raises is
retried a bounded number of times with exponential backoff; after the last
try (``handler_failed``) — or at once for a record that is not a valid event
(``malformed``) or whose ``stellara.`` type the topic does not carry
(``unknown_type``) — the record goes to ``<topic>.dlq`` with the original
key, value and headers plus the ``x-dlq-*`` headers, and the partition moves
on. A type outside the ``stellara.`` namespace is acknowledged without
calling the handler and counted as ``stellara_events_handled_total{outcome="ignored"}``.
A failure because the database could not be reached (restarting, unreachable,
a connection cut) is not the record's fault: it is retried with the same
backoff until the database is back, without counting against the record, so
an outage never dead-letters good records. Handlers are expected to be idempotent (see
``stellara_kit.inbox``): a crash between handling and the commit redelivers.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from prometheus_client import CollectorRegistry, Counter

from stellara_contracts import CloudEvent, EventDecodeError, UnknownEvent, decode_event
from stellara_contracts.topics import dlq_topic
from stellara_kit.db import connection_lost
from stellara_kit.logs import traced

log = logging.getLogger(__name__)

EventHandler = Callable[[CloudEvent], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff_seconds: float = 0.2
    max_backoff_seconds: float = 10.0

    def delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based)."""
        return float(min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds))


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.handled = Counter(
            "stellara_events_handled_total",
            "Events handled, by topic and outcome",
            ["topic", "outcome"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "stellara_events_dead_lettered_total",
            "Records sent to a dead-letter topic, by topic and reason",
            ["topic", "reason"],
            registry=registry,
        )


def dlq_headers(
    record_headers: Any,
    *,
    error: str,
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    attempts: int,
    consumer: str,
) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in record_headers or ():
        headers[key] = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    headers.update(
        {
            "x-dlq-reason": reason,
            "x-dlq-error": error[:4000],
            "x-dlq-original-topic": topic,
            "x-dlq-original-partition": str(partition),
            "x-dlq-original-offset": str(offset),
            "x-dlq-attempts": str(attempts),
            "x-dlq-consumer": consumer,
        }
    )
    return headers


async def publish_dead_letter(
    broker: KafkaBroker,
    message: KafkaMessage,
    *,
    reason: str,
    error: str,
    attempts: int,
    consumer: str,
) -> None:
    """Send the original record to ``<topic>.dlq`` with the error attached, and wait for the ack."""
    record = message.raw_message
    assert not isinstance(record, tuple)
    headers = dlq_headers(
        record.headers,
        error=error,
        reason=reason,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        attempts=attempts,
        consumer=consumer,
    )
    await broker.publish(
        record.value or b"", topic=dlq_topic(record.topic), key=record.key, headers=headers
    )


def subscribe_events(
    broker: KafkaBroker,
    *,
    topic: str,
    logical_topic: str,
    group_id: str,
    handler: EventHandler,
    retry: RetryPolicy,
    metrics: ConsumerMetrics | None = None,
    consumer_name: str | None = None,
    **subscriber_options: Any,
) -> Any:
    """Subscribe ``handler`` to ``topic`` with commit-after-handle, retries and a DLQ.

    ``logical_topic`` is the catalogue name (``tenant.events``) used to decode;
    ``topic`` the physical one (with a deployment prefix).
    """
    name = consumer_name or group_id
    options: dict[str, Any] = {
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 1_000,
    }
    options.update(subscriber_options)

    async def consume(message: KafkaMessage) -> None:
        body: bytes = message.body
        try:
            event = decode_event(logical_topic, body)
        except EventDecodeError as exc:
            # not an event of the topic (``malformed``), or a ``stellara.`` type it does not
            # carry (``unknown_type``): the contracts decide, the same on every topic
            log.warning("undecodable record on %s (%s): %s", topic, exc.reason, exc)
            await publish_dead_letter(
                broker, message, reason=exc.reason, error=str(exc), attempts=0, consumer=name
            )
            if metrics:
                metrics.dead_lettered.labels(topic=logical_topic, reason=exc.reason).inc()
            await message.ack()
            return
        if isinstance(event, UnknownEvent):  # another system's type: not ours to judge
            if metrics:
                metrics.handled.labels(topic=logical_topic, outcome="ignored").inc()
            await message.ack()
            return

        with traced(event.traceparent):
            await _handle_with_retries(event, message)

    async def _handle_with_retries(event: CloudEvent, message: KafkaMessage) -> None:
        attempt = 0
        outage = 0
        while True:
            try:
                await handler(event)
                if metrics:
                    metrics.handled.labels(topic=logical_topic, outcome="ok").inc()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if connection_lost(exc):
                    outage += 1
                    log.warning(
                        "event %s (%s) waits for its database (try %d), retrying in %.1f s: %r",
                        event.id,
                        event.type,
                        outage,
                        retry.delay(outage),
                        exc,
                    )
                    await asyncio.sleep(retry.delay(outage))
                    continue
                attempt += 1
                if attempt > retry.max_retries:
                    error = "".join(traceback.format_exception_only(exc)).strip()
                    log.error(
                        "event %s (%s) failed %d times, dead-lettering: %s",
                        event.id,
                        event.type,
                        attempt,
                        error,
                    )
                    await publish_dead_letter(
                        broker,
                        message,
                        reason="handler_failed",
                        error=error,
                        attempts=attempt,
                        consumer=name,
                    )
                    if metrics:
                        metrics.dead_lettered.labels(
                            topic=logical_topic, reason="handler_failed"
                        ).inc()
                        metrics.handled.labels(topic=logical_topic, outcome="dead_lettered").inc()
                    break
                log.warning(
                    "event %s (%s) failed (try %d of %d), retrying: %s",
                    event.id,
                    event.type,
                    attempt,
                    retry.max_retries + 1,
                    exc,
                )
                await asyncio.sleep(retry.delay(attempt))
        await message.ack()

    subscriber = broker.subscriber(topic, group_id=group_id, ack_policy=AckPolicy.MANUAL, **options)
    subscriber(consume)
    return subscriber
