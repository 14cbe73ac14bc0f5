"""The CloudEvents 1.0 envelope (structured JSON mode) every event travels in."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def utcnow() -> datetime:
    return datetime.now(UTC)


def plain_decimal(value: Decimal) -> str:
    """``value`` in plain notation ("0.000000002", "10000"), never "2E-9" or "1E+4"."""
    return format(value, "f")


#: a decimal written out in plain notation in JSON, so billing systems read amounts and
#: quantities without surprises (CSV answers use ``plain_decimal`` too)
PlainDecimal = Annotated[Decimal, PlainSerializer(plain_decimal, return_type=str, when_used="json")]


class FrozenModel(BaseModel):
    """Immutable, and tolerant of fields a newer producer added."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class EventData(FrozenModel):
    """Base of every event payload."""

    tenant_id: UUID = Field(
        description="The tenant the event belongs to; also the Kafka key.",
        examples=["5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11"],
    )


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope in structured JSON mode.

    ``id`` is the deduplication key; ``tenantid`` (a CloudEvents extension)
    and ``subject`` name the tenant. Subclasses pin ``type`` and ``data``.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    #: the topic an event class travels on (set on each concrete event class)
    topic: ClassVar[str] = ""

    specversion: Literal["1.0"] = Field(default="1.0", description="CloudEvents version.")
    id: UUID = Field(
        default_factory=uuid4,
        description="Unique id of this event; consumers deduplicate on it.",
        examples=["0f8fad5b-d9cb-469f-a165-70867728950e"],
    )
    source: str = Field(
        min_length=1,
        max_length=200,
        description="The producing service or client.",
        examples=["tenant-svc"],
    )
    type: str = Field(description="Versioned event type.", examples=["stellara.tenant.created.v1"])
    subject: str | None = Field(default=None, description="The tenant id, as text.")
    tenantid: UUID = Field(description="The tenant id (CloudEvents extension attribute).")
    time: AwareDatetime = Field(default_factory=utcnow, description="When the event happened.")
    datacontenttype: Literal["application/json"] = "application/json"
    traceparent: str | None = Field(
        default=None,
        description="W3C trace context of the operation that produced the event.",
        examples=["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
    )
    data: Any = Field(description="The event payload.")

    @field_validator("traceparent")
    @classmethod
    def _check_traceparent(cls, value: str | None) -> str | None:
        if value is not None and not _TRACEPARENT.match(value):
            raise ValueError("traceparent must follow W3C trace context")
        return value

    @property
    def key(self) -> bytes:
        """The Kafka key: the tenant id, so one tenant's events stay in order."""
        return str(self.tenantid).encode()

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class UnknownEvent(CloudEvent):
    """An event whose ``type`` this version of the contracts does not know.

    Consumers recognise it (``isinstance(e, UnknownEvent)``) and skip it: a
    newer producer may publish types an older consumer has not learnt yet.
    """

    data: Any = None
