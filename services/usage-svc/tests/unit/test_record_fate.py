"""A usage record's fate, decided without Kafka or PostgreSQL: counted, ignored, a duplicate,
or dead-lettered with which reason (the `x-dlq-reason` header operators read).

The records go through the real parser, classifier and ``BatchBuilder`` of the ingester;
only the producer of the dead-letter topic is a stand-in that keeps what it was given.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry

from stellara_contracts.events import TenantSnapshot, TenantStatus
from stellara_kit.consumer import ConsumerMetrics
from stellara_kit.tenant_directory import TenantDirectory
from usage_svc.ingest.batch import BatchBuilder, DeadLetters
from usage_svc.ingest.decoding import MalformedRecord, UsageRecordParser
from usage_svc.ingest.metrics import IngestMetrics, IngestStats
from usage_svc.ingest.repository import StagedFields
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.meters import Aggregation, Meter
from usage_svc.settings import Settings

NOW = datetime.now(UTC).replace(microsecond=0)
ACTIVE = UUID("11111111-1111-4111-8111-111111111111")
DELETED = UUID("22222222-2222-4222-8222-222222222222")
UNKNOWN = UUID("33333333-3333-4333-8333-333333333333")
DELETED_AT = NOW - timedelta(hours=1)
TOPIC = "usage.recorded"
BERLIN_WINTER = timezone(timedelta(hours=1))


def stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def snapshot(tenant_id: UUID, status: TenantStatus, deleted_at: datetime | None = None) -> Any:
    created = NOW - timedelta(days=30)
    return TenantSnapshot(
        tenant_id=tenant_id,
        slug=f"t-{tenant_id.hex[:8]}",
        name="Tenant",
        plan="starter",
        status=status,
        version=1,
        created_at=created,
        updated_at=deleted_at or created,
        deleted_at=deleted_at,
    )


def event(**changes: Any) -> dict[str, Any]:
    """A valid UsageRecorded of ACTIVE; ``data_<field>`` changes a field of ``data``
    (``None`` removes a field)."""
    tenant = str(changes.pop("tenant", ACTIVE))
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid4()),
        "source": "billing-svc",
        "type": "stellara.usage.recorded.v1",
        "tenantid": tenant,
        "subject": tenant,
        "time": stamp(NOW),
        "data": {
            "tenant_id": tenant,
            "metric": "api_calls",
            "value": 1,
            "occurred_at": stamp(NOW - timedelta(minutes=5)),
            "properties": {},
        },
    }
    for name, value in changes.items():
        target, key = (doc["data"], name[5:]) if name.startswith("data_") else (doc, name)
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return doc


def raw(doc: Any) -> bytes:
    return doc if isinstance(doc, bytes) else orjson.dumps(doc)


# ---------------------------------------------------------------------------- the ingester
@dataclass
class RecordingProducer:
    """Stands in for the dead-letter topic's producer: keeps every record sent."""

    sent: list[tuple[str, bytes, bytes | None, dict[str, str]]] = field(default_factory=list)

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        self.sent.append((topic, value, key, {k: v.decode() for k, v in headers}))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@dataclass
class Fates:
    counted: list[StagedFields]
    dead_lettered: dict[int, str]  # offset → reason
    dead_letter_topics: set[str]
    duplicates: int
    ignored: int


def metrics() -> IngestMetrics:
    registry = CollectorRegistry()
    runtime = SimpleNamespace(registry=registry, consumer_metrics=ConsumerMetrics(registry))
    return IngestMetrics(runtime)  # type: ignore[arg-type]


def builder(**settings: Any) -> tuple[BatchBuilder, IngestMetrics]:
    directory = TenantDirectory("unused:9092")
    directory.apply(snapshot(ACTIVE, TenantStatus.ACTIVE))
    directory.apply(snapshot(DELETED, TenantStatus.DELETED, deleted_at=DELETED_AT))
    meters = MeterCatalogue(None)  # the platform meters, no database
    meters.put(Meter("seats", Aggregation.UNIQUE_COUNT, "users", unique_property="user"))
    meters.put(Meter("temperature", Aggregation.LATEST, "celsius"))
    values: dict[str, Any] = {"unknown_tenant_grace_seconds": 0, **settings}
    ingest_metrics = metrics()
    return (
        BatchBuilder(
            settings=Settings(**values),
            directory=directory,
            meters=meters,
            metrics=ingest_metrics,
            stats=IngestStats(),
        ),
        ingest_metrics,
    )


def fates(*values: Any, **settings: Any) -> Fates:
    """Build one batch of these record values (offsets 0, 1, …) and say what became of each."""
    batch_builder, ingest_metrics = builder(**settings)
    producer = RecordingProducer()
    dead_letters = DeadLetters(producer, consumer_group="usage-svc", metrics=ingest_metrics)  # type: ignore[arg-type]
    records = [
        ConsumerRecord(TOPIC, 0, offset, 0, 0, b"k", raw(value), None, 1, len(raw(value)), [])
        for offset, value in enumerate(values)
    ]

    async def build() -> Any:
        async def nothing_more() -> dict[Any, Any]:
            return {}

        return await batch_builder.build(
            {TopicPartition(TOPIC, 0): records},
            fetch_more=nothing_more,
            writer_busy=lambda: False,
            dead_letters=dead_letters,
        )

    batch = asyncio.run(build())
    assert batch.offsets == {TopicPartition(TOPIC, 0): len(values)}
    return Fates(
        counted=batch.rows,
        dead_lettered={
            int(headers["x-dlq-original-offset"]): headers["x-dlq-reason"]
            for _, _, _, headers in producer.sent
        },
        dead_letter_topics={topic for topic, _, _, _ in producer.sent},
        duplicates=batch.duplicates_in_batch,
        ignored=int(ingest_metrics.events.labels("ignored")._value.get()),
    )


# ---------------------------------------------------------------------------- the tables
DEAD_LETTERED = [
    pytest.param(b"", "malformed", id="empty record"),
    pytest.param(b"{not json", "malformed", id="not JSON"),
    pytest.param(b"[1, 2]", "malformed", id="JSON but not an event"),
    pytest.param(event(id="not-a-uuid"), "malformed", id="id not a UUID"),
    pytest.param(event(id=None), "malformed", id="no id"),
    pytest.param(event(source=""), "malformed", id="empty source"),
    pytest.param(event(specversion="0.3"), "malformed", id="other CloudEvents version"),
    pytest.param(event(subject=str(uuid4())), "malformed", id="subject names another tenant"),
    pytest.param(event(data_tenant_id=str(uuid4())), "malformed", id="data names another tenant"),
    pytest.param(event(data_metric="Api-Calls"), "malformed", id="metric off the pattern"),
    pytest.param(event(data_value="1"), "malformed", id="value as text"),
    pytest.param(event(data_value=None), "malformed", id="no value"),
    pytest.param(event(data_occurred_at="2026-12-01 10:00:00"), "malformed", id="no zone"),
    pytest.param(event(data_occurred_at="2026-02-30T10:00:00Z"), "malformed", id="no such day"),
    pytest.param(event(data_occurred_at=1764583200), "malformed", id="epoch timestamp"),
    pytest.param(event(data_properties={"k": [1]}), "malformed", id="list property"),
    pytest.param(event(source="a\u0000b"), "malformed", id="NUL in source"),
    pytest.param(event(data_value=1e16), "value_out_of_range", id="value past the bound"),
    pytest.param(event(data_value=-1e16), "value_out_of_range", id="value below the bound"),
    pytest.param(
        event(type="stellara.usage.recorded.v2"), "unknown_type", id="a version we do not read"
    ),
    pytest.param(
        event(type="stellara.tenant.created.v1"), "unknown_type", id="another topic's event"
    ),
    pytest.param(event(tenant=UNKNOWN), "unknown_tenant", id="unknown tenant"),
    pytest.param(
        event(tenant=DELETED, data_occurred_at=stamp(DELETED_AT)),
        "tenant_deleted",
        id="deleted tenant, at its deletion",
    ),
    pytest.param(
        event(tenant=DELETED, data_occurred_at=stamp(NOW - timedelta(minutes=1))),
        "tenant_deleted",
        id="deleted tenant, after its deletion",
    ),
    pytest.param(event(data_metric="teleports"), "unknown_metric", id="metric not in catalogue"),
    pytest.param(event(data_value=-1), "negative_value", id="negative counter"),
    pytest.param(
        event(data_occurred_at=stamp(NOW + timedelta(hours=1))),
        "future_timestamp",
        id="an hour ahead",
    ),
    pytest.param(
        event(data_occurred_at=stamp(NOW - timedelta(days=60))), "too_old", id="past the window"
    ),
    pytest.param(event(data_metric="seats"), "missing_property", id="distinct count, no property"),
]


@pytest.mark.parametrize(("value", "reason"), DEAD_LETTERED)
def test_a_refused_record_is_dead_lettered_with_its_reason(value: Any, reason: str) -> None:
    fate = fates(value)
    assert fate.dead_lettered == {0: reason}
    assert fate.dead_letter_topics == {"usage.recorded.dlq"}
    assert fate.counted == []


COUNTED = [
    pytest.param(event(), "api_calls", 1.0, id="a plain event"),
    pytest.param(event(subject=None), "api_calls", 1.0, id="no subject"),
    pytest.param(event(time=None), "api_calls", 1.0, id="no time"),
    pytest.param(event(data_properties=None), "api_calls", 1.0, id="no properties"),
    pytest.param(event(data_value=2.5), "api_calls", 2.5, id="a fraction"),
    pytest.param(event(data_value=1e15), "api_calls", 1e15, id="value at the bound"),
    pytest.param(event(id=str(uuid4()).upper()), "api_calls", 1.0, id="id in upper case"),
    pytest.param(
        event(data_occurred_at=(NOW - timedelta(minutes=5)).astimezone(BERLIN_WINTER).isoformat()),
        "api_calls",
        1.0,
        id="an offset zone",
    ),
    pytest.param(
        event(data_metric="temperature", data_value=-4), "temperature", -4.0, id="negative gauge"
    ),
    pytest.param(
        event(data_metric="seats", data_properties={"user": "ada"}),
        "seats",
        1.0,
        id="distinct count",
    ),
    pytest.param(
        event(tenant=DELETED, data_occurred_at=stamp(DELETED_AT - timedelta(seconds=1))),
        "api_calls",
        1.0,
        id="deleted tenant, before its deletion",
    ),
    pytest.param(
        event(data_occurred_at=stamp(NOW + timedelta(seconds=30))),
        "api_calls",
        1.0,
        id="within the skew",
    ),
    pytest.param(
        event(traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        "api_calls",
        1.0,
        id="with a trace",
    ),
]


@pytest.mark.parametrize(("value", "metric", "amount"), COUNTED)
def test_a_valid_record_is_counted(value: dict[str, Any], metric: str, amount: float) -> None:
    fate = fates(value)
    assert fate.dead_lettered == {}
    [row] = fate.counted
    assert (row.metric, row.value) == (metric, amount)
    assert str(row.event_id) == value["id"].lower()
    assert row.tenant_id == UUID(value["tenantid"])


def test_a_distinct_count_keeps_the_value_it_counts() -> None:
    values = [
        event(data_metric="seats", data_properties={"user": v}) for v in ("ada", 7, True, False)
    ]
    assert [row.unique_value for row in fates(*values).counted] == ["ada", "7", "true", "false"]


def test_only_metrics_some_plan_limits_are_tracked_for_alerts() -> None:
    rows = fates(event(), event(data_metric="temperature")).counted
    assert [(row.metric, row.tracked) for row in rows] == [
        ("api_calls", True),
        ("temperature", False),
    ]


@pytest.mark.parametrize(
    ("value", "settings", "expected"),
    [
        pytest.param(event(data_metric="teleports"), {}, "unknown_metric", id="refused by default"),
        pytest.param(
            event(data_metric="teleports"), {"allow_unknown_metrics": True}, None, id="allowed"
        ),
        pytest.param(
            event(data_metric="teleports", data_value=-1),
            {"allow_unknown_metrics": True},
            "negative_value",
            id="allowed, counted as a sum: never negative",
        ),
    ],
)
def test_unknown_metrics_follow_the_setting(
    value: dict[str, Any], settings: dict[str, Any], expected: str | None
) -> None:
    fate = fates(value, **settings)
    if expected is None:
        assert [row.metric for row in fate.counted] == ["teleports"]
        assert fate.dead_lettered == {}
    else:
        assert fate.dead_lettered == {0: expected}


def test_another_systems_event_type_is_ignored_not_dead_lettered() -> None:
    fate = fates(event(type="com.example.page_viewed.v1"))
    assert (fate.counted, fate.dead_lettered, fate.ignored) == ([], {}, 1)


def test_an_event_twice_in_one_batch_counts_once() -> None:
    first = event()
    other_tenant = event(
        id=first["id"], tenant=DELETED, data_occurred_at=stamp(DELETED_AT - timedelta(minutes=1))
    )
    fate = fates(first, dict(first), other_tenant)
    assert fate.duplicates == 1
    assert [row.tenant_id for row in fate.counted] == [ACTIVE, DELETED]


def test_a_refused_record_does_not_stop_the_next_ones() -> None:
    fate = fates(event(), b"{not json", event(data_value=-1), event())
    assert fate.dead_lettered == {1: "malformed", 2: "negative_value"}
    assert len(fate.counted) == 2


# ---------------------------------------------------------------------------- the parser alone
@pytest.mark.parametrize(
    ("value", "outcome"),
    [
        pytest.param(event(), "parsed", id="our event"),
        pytest.param(event(type="com.example.other.v1"), None, id="another system's type"),
        pytest.param(b"null", "malformed", id="JSON null"),
        pytest.param(event(data_value=True), "malformed", id="a boolean value"),
        pytest.param(event(data_value=1e16), "value_out_of_range", id="past the bound"),
        pytest.param(event(datacontenttype="text/plain"), "malformed", id="not JSON data"),
    ],
)
def test_the_parser_says_what_a_record_is(value: Any, outcome: str | None) -> None:
    try:
        parsed = UsageRecordParser().parse(raw(value))
        said = "parsed" if parsed is not None else None
    except MalformedRecord as exc:
        said = exc.reason
    assert said == outcome


def test_the_fast_and_the_contracts_path_read_an_event_alike() -> None:
    doc = event(data_properties={"plan": "pro", "beta": True, "size": 3})
    fast = UsageRecordParser().parse(raw(doc))
    # a key order the fast path does not expect still reads the same through the contract
    slow = UsageRecordParser()._slow(raw(doc))
    assert fast == slow
