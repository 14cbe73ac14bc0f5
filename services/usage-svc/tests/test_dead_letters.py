"""Bad usage records go to usage.recorded.dlq with their reason; the stream keeps flowing."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from stellara_contracts import topics
from stellara_contracts.events import TenantStatus
from stellara_kit.testing import running_app, wait_for
from usage_svc.main import create_app
from usage_svc.settings import Settings

from .conftest import RunningService
from .helpers import (
    Tenants,
    dead_letter_of,
    header_map,
    headers,
    metric_value,
    produce_usage,
    publish_tenants,
    record,
    snapshot,
    wait_for_events,
    wait_for_tenant,
    wait_ready,
)

DEAD_LETTERED = "stellara_events_dead_lettered_total"

#: long enough for a tenant published just after its first usage record
SERVICE_SETTINGS = {"unknown_tenant_grace_seconds": 2.0}

BadValue = Callable[[RunningService, UUID], Awaitable[bytes]]


def _value(
    tenant_id: UUID,
    metric: str = "api_calls",
    value: float = 1,
    *,
    occurred_at: datetime | None = None,
    properties: dict[str, str] | None = None,
) -> bytes:
    return record(tenant_id, metric, value, occurred_at=occurred_at, properties=properties)[1]


async def unknown_tenant(service: RunningService, tenant: UUID) -> bytes:
    return _value(uuid4())


async def deleted_tenant(service: RunningService, tenant: UUID) -> bytes:
    gone = await service.new_tenant(status=TenantStatus.DELETED)
    return _value(gone.tenant_id)


async def unknown_metric(service: RunningService, tenant: UUID) -> bytes:
    return _value(tenant, "teleports")


async def negative_counter(service: RunningService, tenant: UUID) -> bytes:
    return _value(tenant, "api_calls", -5)


async def in_the_future(service: RunningService, tenant: UUID) -> bytes:
    return _value(tenant, occurred_at=datetime.now(UTC) + timedelta(hours=1))


async def older_than_the_dedup_window(service: RunningService, tenant: UUID) -> bytes:
    window = service.settings.dedup_window_days
    return _value(tenant, occurred_at=datetime.now(UTC) - timedelta(days=window + 1))


async def not_json(service: RunningService, tenant: UUID) -> bytes:
    return b'{"type": "stellara.usage.recorded.v1", "data": '


async def not_an_event(service: RunningService, tenant: UUID) -> bytes:
    return b'{"type": "stellara.usage.recorded.v1", "tenantid": "nobody"}'


def _edited(tenant: UUID, **data: Any) -> bytes:
    """A valid record's value with ``data`` fields replaced (to send what the contract refuses)."""
    document = json.loads(_value(tenant))
    document["data"].update(data)
    return json.dumps(document).encode()


async def nul_in_a_string(service: RunningService, tenant: UUID) -> bytes:
    """Valid JSON, but PostgreSQL cannot store a NUL in text or jsonb: the schema refuses it."""
    return _edited(tenant, properties={"region": "eu\x00west"})


async def a_value_past_the_bound(service: RunningService, tenant: UUID) -> bytes:
    """Two of these in one hour would overflow the aggregates' double precision."""
    return _edited(tenant, value=1.7e308)


async def a_number_as_text(service: RunningService, tenant: UUID) -> bytes:
    return _edited(tenant, value="16")


async def an_epoch_timestamp(service: RunningService, tenant: UUID) -> bytes:
    return _edited(tenant, occurred_at=int(datetime.now(UTC).timestamp()))


async def a_typo_in_the_type(service: RunningService, tenant: UUID) -> bytes:
    document = json.loads(_value(tenant))
    document["type"] = "stellara.usage.recordd.v1"
    return json.dumps(document).encode()


async def a_future_version(service: RunningService, tenant: UUID) -> bytes:
    document = json.loads(_value(tenant))
    document["type"] = "stellara.usage.recorded.v2"
    return json.dumps(document).encode()


async def missing_counted_property(service: RunningService, tenant: UUID) -> bytes:
    meter = {
        "key": "visitors",
        "aggregation": "UNIQUE_COUNT",
        "unit": "visitors",
        "unique_property": "user",
    }
    added = await service.http.post("/meters", json=meter, headers=headers(service.settings))
    assert added.status_code in (200, 201), added.text
    return _value(tenant, "visitors", properties={"page": "/home"})


CASES = [
    ("unknown_tenant", unknown_tenant),
    ("tenant_deleted", deleted_tenant),
    ("unknown_metric", unknown_metric),
    ("negative_value", negative_counter),
    ("future_timestamp", in_the_future),
    ("too_old", older_than_the_dedup_window),
    ("malformed", not_json),
    ("malformed", not_an_event),
    ("malformed", nul_in_a_string),
    ("malformed", a_number_as_text),
    ("malformed", an_epoch_timestamp),
    ("value_out_of_range", a_value_past_the_bound),
    ("unknown_type", a_typo_in_the_type),
    ("unknown_type", a_future_version),
    ("missing_property", missing_counted_property),
]


class TestDeadLetters:
    @pytest.mark.parametrize(("reason", "bad_value"), CASES, ids=[c[1].__name__ for c in CASES])
    async def test_a_bad_record_is_dead_lettered_with_its_reason_and_the_next_one_counts(
        self, service: RunningService, reason: str, bad_value: BadValue
    ) -> None:
        tenant = (await service.new_tenant()).tenant_id
        bad = await bad_value(service, tenant)
        counted = {"topic": topics.USAGE_RECORDED, "reason": reason}
        before = await metric_value(service.http, DEAD_LETTERED, **counted)
        key, first = record(tenant, "api_calls", 1)
        _, after = record(tenant, "api_calls", 2)
        # one key: the three records sit on one partition, in this order
        await produce_usage(service.settings, [(key, first), (key, bad), (key, after)])

        usage = await wait_for_events(service.http, service.settings, tenant, "api_calls", 2)
        assert usage["value"] == 3
        letter = await dead_letter_of(service.settings, bad)
        told = header_map(letter)
        assert told["x-dlq-reason"] == reason
        assert told["x-dlq-original-topic"] == service.settings.topic(topics.USAGE_RECORDED)
        assert told["x-dlq-error"]
        assert letter.key == key

        async def dead_lettered() -> float:
            return await metric_value(service.http, DEAD_LETTERED, **counted)

        await wait_for(dead_lettered, until=lambda n: n == before + 1)

    async def test_records_of_a_tenant_published_a_moment_later_are_not_dead_lettered(
        self, service: RunningService
    ) -> None:
        late = snapshot(plan="starter")
        await produce_usage(service.settings, [record(late.tenant_id, "api_calls", 1)])
        await publish_tenants(service.settings, late)

        usage = await wait_for_events(
            service.http, service.settings, late.tenant_id, "api_calls", 1
        )
        assert usage["value"] == 1


class TestDeletedTenants:
    @pytest.mark.parametrize("told", ["deleted_at", "updated_at"])
    async def test_usage_before_the_deletion_counts_and_usage_after_it_is_dead_lettered(
        self, service: RunningService, told: str
    ) -> None:
        deleted_at = datetime.now(UTC) - timedelta(hours=1)
        gone = snapshot(status=TenantStatus.DELETED, deleted_at=deleted_at)
        if told == "updated_at":  # a snapshot published before they carried deleted_at
            gone = gone.model_copy(update={"deleted_at": None})
        await publish_tenants(service.settings, gone)
        await wait_for_tenant(service.app, gone.tenant_id)
        tenant = gone.tenant_id
        key, last_call = record(
            tenant, "api_calls", 2, occurred_at=deleted_at - timedelta(milliseconds=1)
        )
        _, after = record(tenant, "api_calls", 5, occurred_at=deleted_at)
        _, earlier = record(tenant, "api_calls", 3, occurred_at=deleted_at - timedelta(minutes=9))
        # the last calls reach the ingester after the deletion did
        await produce_usage(service.settings, [(key, last_call), (key, after), (key, earlier)])

        start = (deleted_at - timedelta(days=1)).date().isoformat()
        usage = await wait_for_events(
            service.http, service.settings, tenant, "api_calls", 2, start=start
        )
        assert (usage["value"], usage["events"]) == (5, 2)
        told_why = header_map(await dead_letter_of(service.settings, after))
        assert told_why["x-dlq-reason"] == "tenant_deleted"
        assert deleted_at.isoformat() in told_why["x-dlq-error"]


class TestUnknownMetricsAllowed:
    async def test_an_unknown_metric_is_summed_when_the_catalogue_allows_it(
        self, settings: Settings, tenants: Tenants
    ) -> None:
        open_catalogue = settings.model_copy(update={"allow_unknown_metrics": True})
        tenant = tenants.starter.tenant_id
        key, negative = record(tenant, "teleports", -1)
        async with running_app(create_app(open_catalogue)) as http:
            await wait_ready(http)
            await produce_usage(
                settings,
                [record(tenant, "teleports", 2), (key, negative), record(tenant, "teleports", 3)],
            )
            usage = await wait_for_events(http, settings, tenant, "teleports", 2)
            assert (usage["value"], usage["aggregation"]) == (5, "SUM")
            # summed like a counter, so a negative value is still refused
            assert header_map(await dead_letter_of(settings, negative))["x-dlq-reason"] == (
                "negative_value"
            )


class TestOtherSystemsEvents:
    async def test_a_type_outside_our_namespace_is_ignored_and_counted(
        self, service: RunningService
    ) -> None:
        tenant = (await service.new_tenant()).tenant_id
        before = await metric_value(service.http, "stellara_usage_events_total", outcome="ignored")
        key, good = record(tenant, "api_calls", 4)
        foreign = json.dumps(
            {"specversion": "1.0", "id": "order-1", "source": "shop", "type": "com.shop.placed"}
        ).encode()
        await produce_usage(service.settings, [(key, foreign), (key, good)])

        usage = await wait_for_events(service.http, service.settings, tenant, "api_calls", 1)
        assert usage["value"] == 4
        ignored = await metric_value(service.http, "stellara_usage_events_total", outcome="ignored")
        assert ignored == before + 1
