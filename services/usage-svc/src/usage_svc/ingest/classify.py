"""Which parsed records are accepted, and why the others go to the dead-letter topic."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import orjson

from stellara_contracts import UNKNOWN_TYPE
from stellara_contracts.events import TenantSnapshot, TenantStatus
from stellara_kit.tenant_directory import TenantDirectory
from usage_svc.ingest.decoding import VALUE_OUT_OF_RANGE, ParsedUsage
from usage_svc.ingest.repository import StagedRow
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.meters import Aggregation
from usage_svc.plans import Plan

# dead-letter reasons (the `x-dlq-reason` header and the metric label)
MALFORMED = "malformed"
UNKNOWN_TENANT = "unknown_tenant"
TENANT_DELETED = "tenant_deleted"
UNKNOWN_METRIC = "unknown_metric"
NEGATIVE_VALUE = "negative_value"
FUTURE_TIMESTAMP = "future_timestamp"
TOO_OLD = "too_old"
MISSING_PROPERTY = "missing_property"
#: PostgreSQL refused the record itself (found by splitting the batch that failed)
DATABASE_REJECTED = "database_rejected"

REASONS = (
    MALFORMED,
    UNKNOWN_TYPE,
    VALUE_OUT_OF_RANGE,
    UNKNOWN_TENANT,
    TENANT_DELETED,
    UNKNOWN_METRIC,
    NEGATIVE_VALUE,
    FUTURE_TIMESTAMP,
    TOO_OLD,
    MISSING_PROPERTY,
    DATABASE_REJECTED,
)


def deleted_since(tenant: TenantSnapshot) -> datetime | None:
    """When a deleted tenant was deleted (None while it is not).

    Snapshots published before they carried ``deleted_at`` say it with
    ``updated_at``: a deleted tenant never changes again.
    """
    if tenant.status != TenantStatus.DELETED:
        return None
    return tenant.deleted_at or tenant.updated_at


class Rejection(NamedTuple):
    reason: str
    error: str


class UsageClassifier:
    """Applies the rules that need state: tenants, meters, plans and the clock."""

    def __init__(
        self,
        *,
        directory: TenantDirectory,
        meters: MeterCatalogue,
        plans: Mapping[str, Plan],
        dedup_window: timedelta,
        future_skew: timedelta,
        allow_unknown_metrics: bool,
    ) -> None:
        self.directory = directory
        self.meters = meters
        self.dedup_window = dedup_window
        self.future_skew = future_skew
        self.allow_unknown_metrics = allow_unknown_metrics
        #: metrics some plan limits: their period totals are kept up to date for alerts
        self.tracked_metrics = frozenset(
            metric
            for plan in plans.values()
            for metric, terms in plan.metrics.items()
            if terms.limit is not None
        )
        self._tenant_text: dict[UUID, str] = {}
        self._now: datetime | None = None
        self._latest = self._earliest = datetime.min

    def classify(self, event: ParsedUsage, now: datetime) -> StagedRow | Rejection:
        if now is not self._now:  # a batch shares one ``now``
            self._now = now
            self._latest = now + self.future_skew
            self._earliest = now - self.dedup_window
        tenant = self.directory.get(event.tenant_id)
        if tenant is None:
            return Rejection(UNKNOWN_TENANT, f"tenant {event.tenant_id} is not known")
        if tenant.status == TenantStatus.DELETED:
            # usage up to the deletion is billable; none can occur after it
            deleted_at = deleted_since(tenant)
            if deleted_at is not None and event.occurred_at >= deleted_at:
                return Rejection(
                    TENANT_DELETED,
                    f"tenant {event.tenant_id} was deleted at {deleted_at.isoformat()}; "
                    f"occurred_at {event.occurred_at.isoformat()} is not before it",
                )
        meter = self.meters.get(event.metric)
        if meter is None and not self.allow_unknown_metrics:
            return Rejection(UNKNOWN_METRIC, f"metric {event.metric!r} is not in the catalogue")
        if event.value < 0 and (meter is None or meter.is_counter):
            return Rejection(
                NEGATIVE_VALUE, f"{event.metric} is a counter; value {event.value} is negative"
            )
        if event.occurred_at > self._latest:
            return Rejection(
                FUTURE_TIMESTAMP,
                f"occurred_at {event.occurred_at.isoformat()} is more than "
                f"{int(self.future_skew.total_seconds())} s ahead of {now.isoformat()}",
            )
        if event.occurred_at < self._earliest:
            return Rejection(
                TOO_OLD,
                f"occurred_at {event.occurred_at.isoformat()} is older than the "
                f"{self.dedup_window.days}-day deduplication window",
            )
        unique_value = None
        if meter is not None and meter.aggregation == Aggregation.UNIQUE_COUNT:
            prop = meter.unique_property or ""
            found = event.properties.get(prop)
            if found is None:
                return Rejection(
                    MISSING_PROPERTY,
                    f"{event.metric} counts distinct values of property {prop!r}, "
                    "which the event lacks",
                )
            unique_value = _text(found)
        tenant_text = self._tenant_text.get(event.tenant_id)
        if tenant_text is None:
            if len(self._tenant_text) >= 100_000:
                self._tenant_text.clear()
            tenant_text = self._tenant_text[event.tenant_id] = str(event.tenant_id)
        # the staging table's row, as ``repository.StagedRow`` lays it out
        return (
            tenant_text,
            event.event_id,
            event.metric,
            event.value,
            event.occurred_at,
            event.source,
            orjson.dumps(event.properties).decode() if event.properties else None,
            event.metric in self.tracked_metrics,
            unique_value,
        )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
