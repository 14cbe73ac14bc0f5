"""The CloudEvents 1.0 envelope (structured JSON mode) every event travels in.

The wire types here read JSON as the published JSON Schemas say, and nothing
looser: ids are canonical hyphenated UUID strings, timestamps RFC 3339
strings with a time zone, numbers are JSON numbers (never strings or
booleans). Each type carries its rule into the generated schema as a
``pattern``, so that a validator without format checking (ajv, by default)
refuses what the runtime refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Self
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

#: the CloudEvents ``type`` prefix of every event of the catalogue: a record whose type starts
#: with it but is not known on its topic is refused (``unknown_type``); other types are ignored
NAMESPACE = "stellara."

# The patterns are ECMA-262 (as JSON Schema says) and mean the same in Python's ``re`` when
# matched with ``fullmatch``: ASCII digits spelled ``[0-9]`` (``\d`` is Unicode in Python).
TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
#: RFC 3339 ``date-time`` (section 5.6): upper-case ``T`` and ``Z``, seconds 00-59 (no leap
#: second: no clock we read has one), a numeric offset or ``Z``; year 0000 does not exist
RFC3339_PATTERN = (
    r"^(?!0000)[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
#: text PostgreSQL can store: no NUL character
NO_NUL_PATTERN = r"^[^\x00]*$"


def _full(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern.removeprefix("^").removesuffix("$"))


TRACEPARENT_RE = _full(TRACEPARENT_PATTERN)
UUID_RE = _full(UUID_PATTERN)
RFC3339_RE = _full(RFC3339_PATTERN)


def utcnow() -> datetime:
    return datetime.now(UTC)


def plain_decimal(value: Decimal) -> str:
    """``value`` in plain notation ("0.000000002", "10000"), never "2E-9" or "1E+4"."""
    return format(value, "f")


@dataclass(frozen=True)
class SchemaPattern:
    """Annotation metadata: adds ``pattern`` to the field's JSON Schema."""

    pattern: str

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["pattern"] = self.pattern
        return schema


def _wire_uuid(value: Any) -> Any:
    if isinstance(value, UUID) or (type(value) is str and UUID_RE.fullmatch(value)):
        return value
    raise ValueError("must be a UUID string in canonical form (8-4-4-4-12 hex digits)")


def parse_timestamp(value: Any) -> datetime:
    """An RFC 3339 date-time string with a time zone, as a datetime (ValueError otherwise)."""
    if type(value) is not str or not RFC3339_RE.fullmatch(value):
        raise ValueError(
            "must be an RFC 3339 date-time string with a time zone, e.g. 2026-12-01T10:00:00Z"
        )
    return datetime.fromisoformat(value)  # any day the pattern lets through that does not
    # exist (2026-02-30) raises ValueError here, as the date-time format says


def _wire_timestamp(value: Any) -> Any:
    return value if isinstance(value, datetime) else parse_timestamp(value)


#: a UUID: a ``uuid.UUID`` in Python, a canonical hyphenated string in JSON
Uuid = Annotated[UUID, BeforeValidator(_wire_uuid), SchemaPattern(UUID_PATTERN)]
#: a timezone-aware instant: a ``datetime`` in Python, an RFC 3339 string in JSON
Timestamp = Annotated[
    AwareDatetime, BeforeValidator(_wire_timestamp), SchemaPattern(RFC3339_PATTERN)
]


#: a decimal written out in plain notation in JSON, so billing systems read amounts and
#: quantities without surprises (CSV answers use ``plain_decimal`` too)
PlainDecimal = Annotated[Decimal, PlainSerializer(plain_decimal, return_type=str, when_used="json")]


def _type_is_required(schema: dict[str, Any]) -> None:
    # ``type`` has a default on each envelope class (it is the class's identity for Python
    # producers), which pydantic reads as optional; on the wire it is what tells events apart
    required = schema.setdefault("required", [])
    if "type" in schema.get("properties", {}) and "type" not in required:
        required.insert(min(len(required), 2), "type")


class FrozenModel(BaseModel):
    """Immutable, and tolerant of fields a newer producer added."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class EventData(FrozenModel):
    """Base of every event payload."""

    tenant_id: Uuid = Field(
        description="The tenant the event belongs to; also the Kafka key.",
        examples=["5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11"],
    )


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope in structured JSON mode.

    ``id`` is the deduplication key; ``tenantid`` (a CloudEvents extension)
    and ``subject`` name the tenant. Subclasses pin ``type`` and ``data``.
    ``specversion``, ``id``, ``source``, ``type``, ``tenantid`` and ``data``
    are required on the wire (``new_event`` fills in the first, second and
    fourth for Python producers).
    """

    model_config = ConfigDict(frozen=True, extra="ignore", json_schema_extra=_type_is_required)

    #: the topic an event class travels on (set on each concrete event class)
    topic: ClassVar[str] = ""

    specversion: Literal["1.0"] = Field(description="CloudEvents version.")
    id: Uuid = Field(
        description="Unique id of this event; consumers deduplicate on it (required).",
        examples=["0f8fad5b-d9cb-469f-a165-70867728950e"],
    )
    source: str = Field(
        min_length=1,
        max_length=200,
        pattern=NO_NUL_PATTERN,
        description="The producing service or client.",
        examples=["tenant-svc"],
    )
    type: str = Field(description="Versioned event type.", examples=["stellara.tenant.created.v1"])
    subject: Annotated[str, SchemaPattern(UUID_PATTERN)] | None = Field(
        default=None, description="The tenant id, as text (when present, it must be ``tenantid``)."
    )
    tenantid: Uuid = Field(description="The tenant id (CloudEvents extension attribute).")
    time: Timestamp = Field(default_factory=utcnow, description="When the event happened.")
    datacontenttype: Literal["application/json"] = "application/json"
    traceparent: Annotated[str, SchemaPattern(TRACEPARENT_PATTERN)] | None = Field(
        default=None,
        description="W3C trace context of the operation that produced the event "
        "(CloudEvents distributed tracing extension).",
        examples=["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
    )
    data: Any = Field(description="The event payload.")

    @field_validator("traceparent")
    @classmethod
    def _check_traceparent(cls, value: str | None) -> str | None:
        if value is not None and not TRACEPARENT_RE.fullmatch(value):
            raise ValueError("traceparent must follow W3C trace context")
        return value

    @model_validator(mode="after")
    def _one_tenant(self) -> Self:
        # the tenant-match rule, which JSON Schema cannot say: the key, tenantid, subject and
        # data.tenant_id name one tenant
        tenant = self.tenantid
        if self.subject is not None and self.subject.lower() != str(tenant):
            raise ValueError(f"subject ({self.subject}) differs from tenantid ({tenant})")
        data_tenant = getattr(self.data, "tenant_id", tenant)
        if data_tenant != tenant:
            raise ValueError(f"data.tenant_id ({data_tenant}) differs from tenantid ({tenant})")
        return self

    @property
    def key(self) -> bytes:
        """The Kafka key: the tenant id, so one tenant's events stay in order."""
        return str(self.tenantid).encode()

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class UnknownEvent(BaseModel):
    """An event of a type outside the catalogue's namespace (``stellara.``).

    Another system's event on one of our topics: consumers recognise it
    (``isinstance(e, UnknownEvent)``), count it and move on. Only its
    ``type`` is read; it is not ours to judge. A type *inside* the namespace
    that this version does not know (a typo, a newer version) is no
    UnknownEvent: ``decode_event`` refuses it with reason ``unknown_type``.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: str
    id: Any = None
    source: Any = None
    tenantid: Any = None
    traceparent: Any = None
