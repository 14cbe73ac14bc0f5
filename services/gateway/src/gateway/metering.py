"""Automated metering: one ``api_calls`` usage event for every request served for a tenant.

Recording is a list append on the request path; a background task turns
the entries into UsageRecorded events and publishes them in batches, so
metering never slows or fails a request. Events that Kafka did not
acknowledge are kept (with their ids, so a retry never counts twice) and
retried; the buffer is bounded (the oldest are dropped and counted when
Kafka stays away). Stopping the app flushes what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from uuid import UUID, uuid4

import orjson
from prometheus_client import CollectorRegistry, Counter

from gateway.events import KafkaRecord, UsagePublisher
from gateway.settings import Settings
from stellara_contracts.catalogue import event_type_of
from stellara_contracts.events import UsageRecordedEvent

log = logging.getLogger(__name__)

USAGE_RECORDED_TYPE = event_type_of(UsageRecordedEvent)
_Call = tuple[UUID, str, str, int, float]  # tenant, route template, method, status, epoch seconds


class Metering:
    def __init__(
        self, settings: Settings, publisher: UsagePublisher, registry: CollectorRegistry
    ) -> None:
        self.publisher = publisher
        self.metric = settings.metering_metric
        self.source = settings.service_name
        self.batch_size = settings.metering_batch_size
        self.interval = settings.metering_interval_seconds
        self.limit = settings.metering_buffer_limit
        self._calls: list[_Call] = []
        self._unacked: list[KafkaRecord] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.outcomes = Counter(
            "stellara_gateway_metering_events_total",
            "api_calls metering events by outcome (published, retried, dropped)",
            ["outcome"],
            registry=registry,
        )

    def record(self, tenant_id: UUID, route: str, method: str, status: int, at: float) -> None:
        """Remember one served request (cheap: no I/O, no validation)."""
        self._calls.append((tenant_id, route, method, status, at))
        if len(self._calls) + len(self._unacked) > self.limit:
            del self._calls[0]
            self.outcomes.labels("dropped").inc()
        if len(self._calls) >= self.batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._calls) + len(self._unacked)

    async def run(self) -> None:
        """Publish batches every interval, or as soon as a batch is full (a background task)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Publish everything recorded so far; keep what Kafka did not acknowledge."""
        async with self._lock:
            while self._calls or self._unacked:
                batch = self._unacked[: self.batch_size]
                del self._unacked[: len(batch)]
                room = self.batch_size - len(batch)
                calls = self._calls[:room]
                del self._calls[: len(calls)]
                for start in range(0, len(calls), 100):
                    batch.extend(self._event(*call) for call in calls[start : start + 100])
                    await asyncio.sleep(0)  # let requests run between chunks
                try:
                    errors = await self.publisher.publish(batch)
                except BaseException:
                    self._unacked[:0] = batch
                    raise
                failed = [record for record, error in zip(batch, errors, strict=True) if error]
                self.outcomes.labels("published").inc(len(batch) - len(failed))
                if failed:
                    log.warning("%d metering events not acknowledged; will retry", len(failed))
                    self.outcomes.labels("retried").inc(len(failed))
                    self._unacked[:0] = failed
                    return

    def _event(
        self, tenant_id: UUID, route: str, method: str, status: int, at: float
    ) -> KafkaRecord:
        """One UsageRecorded event, encoded directly (no model validation: every field is
        the gateway's own); ``tests/test_metering.py`` checks it against the contract."""
        tenant = str(tenant_id)
        occurred = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
        value = orjson.dumps(
            {
                "specversion": "1.0",
                "id": str(uuid4()),
                "source": self.source,
                "type": USAGE_RECORDED_TYPE,
                "subject": tenant,
                "tenantid": tenant,
                "time": occurred,
                "datacontenttype": "application/json",
                "data": {
                    "tenant_id": tenant,
                    "metric": self.metric,
                    "value": 1.0,
                    "occurred_at": occurred,
                    "properties": {"route": route, "method": method, "status": status},
                },
            }
        )
        return tenant.encode(), value
