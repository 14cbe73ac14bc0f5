"""The entitlement check: what a tenant's plan lets it use now, answered from memory.

``GET /tenants/{id}/entitlements`` (``?feature=<meter key>`` for one) lists, for
the tenant's plan, each metered feature's limit, its usage so far in the current
billing period, what remains and whether it is allowed now (a hard limit reached
is not), and the boolean features the tenant's ``features.*`` configuration
turns on. Nothing is asked per check:

- the tenant and its plan come from the tenant directory (``tenant.state``);
- period totals from ``usage.period_totals``, the compacted topic usage-svc
  writes in the transaction of each ingested batch (one record per tenant,
  metric and batch), read from the beginning by every replica (no group);
- limits from usage-svc's plan catalogue (``GET /plans``), read again every
  ``GATEWAY_ENTITLEMENTS_PLANS_REFRESH_SECONDS``; a total's record also carries
  its plan's terms, which serve while the catalogue cannot be read;
- boolean features from ``TenantConfigChanged`` on ``tenant.events`` (keys of
  category ``features`` whose value is ``true``), newest key version wins.

Consistency: a check reflects usage at most the ingester's batch interval plus
the outbox relay's delay (plus Kafka's delivery to the gateway) behind what was
ingested; it never counts an event twice and never goes backwards for a
summed meter. The check is neither metered nor rate limited: platform services
call it on every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal
from uuid import UUID

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.auth import GATEWAY_PRINCIPAL, InternalTokens
from gateway.settings import Settings
from stellara_contracts import EventDecodeError, decode_event, topics
from stellara_contracts.events import (
    PeriodTotalChanged,
    PeriodTotalChangedEvent,
    TenantConfigChanged,
    TenantConfigChangedEvent,
    TenantSnapshot,
)
from stellara_contracts.patterns import METER_KEY_PATTERN
from stellara_kit.problems import Problem, Unprocessable

log = logging.getLogger(__name__)

ENTITLEMENTS_PATH = "/tenants/{id}/entitlements"
FEATURES_CATEGORY = "features"
_METER_KEY = re.compile(METER_KEY_PATTERN)
_TENANT = "5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11"

LimitKind = Literal["soft", "hard"]


# ---------------------------------------------------------------- the answer
class MeteredEntitlement(BaseModel):
    """One metered feature of the plan in the current billing period."""

    model_config = ConfigDict(frozen=True)

    feature: str = Field(description="The meter key.", examples=["workflow_runs"])
    limit: float | None = Field(
        description="The plan's limit per period (none: unlimited).", examples=[100]
    )
    limit_kind: LimitKind | None = Field(
        description="hard: no use once the limit is reached; soft: alerts only.",
        examples=["hard"],
    )
    used: float = Field(description="Usage so far in the period.", examples=[42])
    remaining: float | None = Field(
        description="What the limit leaves (none: unlimited).", examples=[58]
    )
    allowed: bool = Field(
        description="False once a hard limit is reached; true otherwise.", examples=[True]
    )


class Entitlements(BaseModel):
    """What a tenant may use now: metered features against its plan, and boolean features."""

    model_config = ConfigDict(frozen=True)

    tenant_id: UUID = Field(examples=[_TENANT])
    plan: str = Field(examples=["free"])
    period_start: date = Field(examples=["2026-12-01"])
    period_end: date = Field(description="Exclusive end of the period.", examples=["2027-01-01"])
    metered: list[MeteredEntitlement] = Field(
        description="Every metered feature of the plan (and any other with usage), or the one "
        "asked for with `feature`."
    )
    features: list[str] = Field(
        description="The boolean features turned on (`features.*` configuration set to true).",
        examples=[["beta_dashboard"]],
    )


def _month(day: date) -> tuple[date, date]:
    start = date(day.year, day.month, 1)
    end = date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)
    return start, end


@dataclass(frozen=True, slots=True)
class Terms:
    limit: float | None
    limit_kind: LimitKind | None


def metered_entitlement(feature: str, terms: Terms | None, used: float) -> MeteredEntitlement:
    limit = terms.limit if terms is not None else None
    kind = terms.limit_kind if terms is not None and limit is not None else None
    remaining = max(0.0, limit - used) if limit is not None else None
    allowed = not (kind == "hard" and limit is not None and used >= limit)
    return MeteredEntitlement(
        feature=feature,
        limit=limit,
        limit_kind=kind,
        used=used,
        remaining=remaining,
        allowed=allowed,
    )


# ---------------------------------------------------------------- state from the events
@dataclass
class EntitlementState:
    """Period totals and boolean features per tenant, as the event stream tells them."""

    totals: dict[UUID, dict[str, PeriodTotalChanged]] = field(default_factory=dict)
    #: per tenant and feature key: (the key's version, on)
    flags: dict[UUID, dict[str, tuple[int, bool]]] = field(default_factory=dict)

    def apply_total(self, total: PeriodTotalChanged) -> None:
        """The newest total of a metered feature (a total of an earlier period is older)."""
        held = self.totals.setdefault(total.tenant_id, {})
        current = held.get(total.metric)
        if current is None or current.period_start <= total.period_start:
            held[total.metric] = total

    def apply_config(self, changed: TenantConfigChanged) -> None:
        flags = self.flags.setdefault(changed.tenant_id, {})
        for change in changed.changes:
            if change.category != FEATURES_CATEGORY:
                continue
            current = flags.get(change.key)
            if current is not None and current[0] >= change.version:
                continue  # redelivered or reordered: an older version of the key
            on = change.action == "set" and change.new_value is True
            flags[change.key] = (change.version, on)

    def features_of(self, tenant_id: UUID) -> list[str]:
        return sorted(k for k, (_, on) in self.flags.get(tenant_id, {}).items() if on)

    def used(self, tenant_id: UUID, period_start: date) -> dict[str, PeriodTotalChanged]:
        """The tenant's totals of the period starting ``period_start``."""
        held = self.totals.get(tenant_id)
        if not held:
            return {}
        return {m: t for m, t in held.items() if t.period_start == period_start}


async def follow_topic(
    bootstrap_servers: str,
    topic: str,
    apply: Callable[[bytes], None],
    ready: asyncio.Event,
) -> None:
    """Read ``topic`` from the beginning (no consumer group: every replica reads all of it),
    set ``ready`` once caught up with the end offsets seen at start, then follow it."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        partitions: list[TopicPartition] = []
        for _ in range(100):
            await consumer._client.force_metadata_update()
            found = consumer.partitions_for_topic(topic)
            if found:
                partitions = [TopicPartition(topic, p) for p in sorted(found)]
                break
            await asyncio.sleep(0.2)
        if not partitions:
            raise RuntimeError(f"topic {topic} does not exist")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        if all(offset == 0 for offset in end.values()):
            ready.set()
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batch.values():
                for record in records:
                    if record.value is not None:  # a tombstone removes nothing we need
                        apply(record.value)
            if not ready.is_set():
                positions = [await consumer.position(tp) >= offset for tp, offset in end.items()]
                if all(positions):
                    log.info("caught up with %s", topic)
                    ready.set()
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


# ---------------------------------------------------------------- usage-svc's plan catalogue
class PlanCatalogue:
    """The plans' limits from usage-svc's ``GET /plans``, read again once stale.

    Only a check that finds the catalogue stale reads it (one read at a time); a failed
    read keeps the catalogue held and is tried again after a few seconds."""

    RETRY_SECONDS = 5.0

    def __init__(
        self, client: httpx.AsyncClient, tokens: InternalTokens, *, refresh_seconds: float
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.refresh_seconds = refresh_seconds
        self.plans: dict[str, dict[str, Terms]] | None = None
        self._next_read = 0.0
        self._reading: asyncio.Future[None] | None = None

    async def current(self) -> dict[str, dict[str, Terms]] | None:
        if time.monotonic() >= self._next_read:
            if self._reading is None:
                self._reading = asyncio.ensure_future(self._read())
            reading = self._reading
            await asyncio.shield(reading)
        return self.plans

    async def _read(self) -> None:
        try:
            headers = {"authorization": f"Bearer {self.tokens.token_for(GATEWAY_PRINCIPAL)}"}
            response = await self.client.get("/plans", headers=headers)
            response.raise_for_status()
            self.plans = parse_plans(response.json())
            self._next_read = time.monotonic() + self.refresh_seconds
        except (httpx.HTTPError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("usage-svc's plan catalogue could not be read: %s", exc)
            self._next_read = time.monotonic() + self.RETRY_SECONDS
        finally:
            self._reading = None


def parse_plans(document: Any) -> dict[str, dict[str, Terms]]:
    """``GET /plans``'s answer as limits per plan and metric."""
    if not isinstance(document, list):
        raise ValueError("the plan catalogue is not a list of plans")
    out: dict[str, dict[str, Terms]] = {}
    for plan in document:
        metrics = {}
        for metric, terms in (plan.get("metrics") or {}).items():
            limit = terms.get("limit")
            metrics[metric] = Terms(
                float(limit) if limit is not None else None,
                terms.get("limit_kind", "soft") if limit is not None else None,
            )
        out[str(plan["key"])] = metrics
    return out


# ---------------------------------------------------------------- the check
class EntitlementCheck:
    """The state behind ``GET /tenants/{id}/entitlements`` and the answer built from it."""

    def __init__(
        self, settings: Settings, *, client: httpx.AsyncClient, tokens: InternalTokens
    ) -> None:
        self.bootstrap_servers = settings.kafka_bootstrap_servers
        self.totals_topic = settings.topic(topics.USAGE_PERIOD_TOTALS)
        self.config_topic = settings.topic(topics.TENANT_EVENTS)
        self.wait_seconds = settings.directory_wait_seconds
        self.state = EntitlementState()
        self.plans = PlanCatalogue(
            client, tokens, refresh_seconds=settings.entitlements_plans_refresh_seconds
        )
        self.totals_ready = asyncio.Event()
        self.features_ready = asyncio.Event()

    # ------------------------------------------------------------ following the topics
    async def follow_totals(self) -> None:
        """Follow ``usage.period_totals`` (a runtime background task)."""
        await follow_topic(
            self.bootstrap_servers, self.totals_topic, self._apply_total, self.totals_ready
        )

    async def follow_features(self) -> None:
        """Follow the configuration changes on ``tenant.events`` (a runtime background task)."""
        await follow_topic(
            self.bootstrap_servers, self.config_topic, self._apply_config, self.features_ready
        )

    def _apply_total(self, value: bytes) -> None:
        try:
            event = decode_event(topics.USAGE_PERIOD_TOTALS, value)
        except EventDecodeError as exc:
            log.warning("skipping an undecodable period total: %s", exc)
            return
        if isinstance(event, PeriodTotalChangedEvent):
            self.state.apply_total(event.data)

    def _apply_config(self, value: bytes) -> None:
        if b"config_changed" not in value:
            return  # most tenant events are about something else: not decoded
        try:
            event = decode_event(topics.TENANT_EVENTS, value)
        except EventDecodeError as exc:
            log.warning("skipping an undecodable tenant event: %s", exc)
            return
        if isinstance(event, TenantConfigChangedEvent):
            self.state.apply_config(event.data)

    # ------------------------------------------------------------ answering
    async def respond(self, request: Request, tenant: TenantSnapshot) -> Response:
        feature = request.query_params.get("feature")
        if feature is not None and not _METER_KEY.fullmatch(feature):
            raise Unprocessable(
                f"feature: {feature[:80]!r} is no meter key (lower case letters, digits and "
                "underscores, starting with a letter).",
                slug="invalid-feature",
                title="Invalid feature",
                field="feature",
            )
        await self._wait_ready()
        plans = await self.plans.current()
        answer = self.entitlements(tenant, plans, feature=feature)
        # pydantic's serializer straight to bytes: half the cost of a dict through json.dumps
        return Response(answer.model_dump_json(), media_type="application/json")

    def entitlements(
        self,
        tenant: TenantSnapshot,
        plans: dict[str, dict[str, Terms]] | None,
        *,
        feature: str | None = None,
        today: date | None = None,
    ) -> Entitlements:
        start, end = _month(today or datetime.now(UTC).date())
        used = self.state.used(tenant.tenant_id, start)
        catalogue = plans.get(tenant.plan) if plans is not None else None

        def terms_of(metric: str) -> Terms | None:
            if catalogue is not None:
                return catalogue.get(metric)
            total = used.get(metric)  # the catalogue is unknown: the record's own terms
            if total is not None and total.plan == tenant.plan:
                return Terms(total.limit, total.limit_kind)
            return None

        names = [feature] if feature is not None else sorted({*(catalogue or {}), *used})
        metered = [
            metered_entitlement(name, terms_of(name), used[name].value if name in used else 0.0)
            for name in names
        ]
        return Entitlements(
            tenant_id=tenant.tenant_id,
            plan=tenant.plan,
            period_start=start,
            period_end=end,
            metered=metered,
            features=self.state.features_of(tenant.tenant_id),
        )

    async def _wait_ready(self) -> None:
        if self.totals_ready.is_set() and self.features_ready.is_set():
            return
        try:
            async with asyncio.timeout(self.wait_seconds):
                await self.totals_ready.wait()
                await self.features_ready.wait()
        except TimeoutError:
            raise Problem(
                "The gateway is starting (reading usage totals and tenant features); retry in "
                "a moment.",
                status=503,
                slug="starting",
                title="Service unavailable",
                headers={"Retry-After": "1"},
            ) from None
