"""The event catalogue: one payload model and one envelope class per event type.

Naming: the payload is the past-tense fact (``TenantCreated``); its envelope
class adds ``Event`` (``TenantCreatedEvent``) and pins the CloudEvents
``type``. Evolution adds optional fields only; a breaking change is a new
``….v2`` type published side by side.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from stellara_contracts import topics
from stellara_contracts.envelope import (
    NO_NUL_PATTERN,
    CloudEvent,
    EventData,
    FrozenModel,
    PlainDecimal,
    Timestamp,
    Uuid,
)
from stellara_contracts.patterns import METER_KEY_PATTERN

_TENANT = "5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11"
_USER = "8d7f5a9c-2b1e-4c3d-9e8f-7a6b5c4d3e2f"
_INVITATION = "c2a1b0d9-8e7f-4a6b-9c5d-4e3f2a1b0c9d"
_WORKFLOW = "a9b8c7d6-e5f4-4a3b-8c2d-1e0f9a8b7c6d"


class TenantStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    TENANT_ADMIN = "tenant_admin"
    USER = "user"


_plan = Field(description="Plan key from the plan catalogue.", examples=["starter"])
_version = Field(ge=1, description="The tenant's version after the change.", examples=[3])


# --------------------------------------------------------------------- tenant.events
class TenantCreated(EventData):
    """A tenant was created; it starts ``pending`` until onboarding completes."""

    slug: str = Field(description="DNS-label slug, unique for ever.", examples=["acme"])
    name: str = Field(description="Display name.", examples=["Acme Corp"])
    plan: str = _plan
    status: TenantStatus = Field(default=TenantStatus.PENDING, examples=["pending"])
    metadata: dict[str, Any] = Field(default_factory=dict, examples=[{"region": "eu"}])
    created_at: Timestamp = Field(examples=["2026-12-01T10:00:00Z"])


class TenantUpdated(EventData):
    """A tenant's name or metadata changed."""

    changes: dict[str, Any] = Field(
        description="Changed fields with their new values.", examples=[{"name": "Acme Inc"}]
    )
    version: int = _version


class TenantActivated(EventData):
    """A tenant became active (after onboarding, by an operator, or on resume)."""

    previous_status: TenantStatus = Field(examples=["pending"])
    version: int = _version


class TenantSuspended(EventData):
    """A tenant was suspended; its users are refused until it is activated again."""

    reason: str = Field(description="Why, in words a person can act on.", examples=["quota"])
    version: int = _version


class TenantDeleted(EventData):
    """A tenant was deleted (soft delete: its slug stays reserved)."""

    slug: str = Field(examples=["acme"])
    version: int = _version


class TenantPlanChanged(EventData):
    """A tenant moved to another plan."""

    old_plan: str = Field(examples=["starter"])
    new_plan: str = Field(examples=["pro"])
    version: int = _version


class ConfigChange(FrozenModel):
    """One changed configuration key inside a TenantConfigChanged."""

    category: str = Field(examples=["billing"])
    key: str = Field(examples=["hard_limit_action"])
    action: Literal["set", "delete"] = Field(examples=["set"])
    old_value: Any = Field(default=None, examples=[None])
    new_value: Any = Field(default=None, examples=["suspend"])
    version: int = Field(ge=1, description="The key's version after the change.", examples=[1])


class TenantConfigChanged(EventData):
    """One or more configuration keys changed together (one transaction)."""

    changes: list[ConfigChange] = Field(min_length=1)
    changed_by: str | None = Field(default=None, examples=[_USER])


class MemberAdded(EventData):
    """A user joined a tenant with a role (or had the role changed)."""

    user_id: str = Field(max_length=200, examples=[_USER])
    email: str | None = Field(default=None, examples=["ada@acme.example"])
    role: Role = Field(examples=["tenant_admin"])
    via: Literal["api", "invitation", "import"] = Field(default="api", examples=["invitation"])


class MemberRemoved(EventData):
    """A user left a tenant."""

    user_id: str = Field(max_length=200, examples=[_USER])
    email: str | None = Field(default=None, examples=["ada@acme.example"])


# --------------------------------------------------------------------- tenant.state
class TenantSnapshot(EventData):
    """The full current state of a tenant (compacted topic, key = tenant id)."""

    slug: str = Field(examples=["acme"])
    name: str = Field(examples=["Acme Corp"])
    plan: str = _plan
    status: TenantStatus = Field(examples=["active"])
    status_reason: str | None = Field(default=None, examples=[None])
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int = _version
    created_at: Timestamp = Field(examples=["2026-12-01T10:00:00Z"])
    updated_at: Timestamp = Field(examples=["2026-12-01T10:05:00Z"])
    deleted_at: Timestamp | None = Field(
        default=None,
        description="When the tenant was deleted (set with status `deleted`; usage that "
        "occurred before it is still billed).",
        examples=[None],
    )


# --------------------------------------------------------------------- usage.recorded
#: the largest magnitude of a usage value. Sums stay far from double overflow (1.8e308: a
#: month of one tenant's metric would need 1e293 events at the bound), and each value up to
#: the bound is exact in a double (integers are exact up to 2^53 = 9.007e15), so totals stay
#: exact to the unit up to ~9e15 and to 16 significant digits beyond. 1e15 is still a
#: petabyte in bytes, or 31 million years in seconds, in one event.
USAGE_VALUE_BOUND = 1e15
_INT_BOUND = int(USAGE_VALUE_BOUND)


def _one_error(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # one message for the property, not one for each member of the union
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError(
            "property_value",
            "must be a string without NUL, a boolean, or a number at most 1e15 in magnitude",
        ) from None


PropertyValue = Annotated[
    Annotated[str, Field(strict=True, pattern=NO_NUL_PATTERN)]
    | Annotated[bool, Field(strict=True)]
    | Annotated[int, Field(strict=True, ge=-_INT_BOUND, le=_INT_BOUND)]
    | Annotated[float, Field(strict=True, ge=-USAGE_VALUE_BOUND, le=USAGE_VALUE_BOUND)],
    WrapValidator(_one_error),
]


def _names_without_nul(properties: dict[str, Any]) -> dict[str, Any]:
    for name in properties:
        if "\x00" in name:
            raise ValueError("a property name holds a NUL character")
    return properties


def _property_names_schema(schema: dict[str, Any]) -> None:
    schema["propertyNames"] = {"pattern": NO_NUL_PATTERN}


UsageProperties = Annotated[dict[str, PropertyValue], AfterValidator(_names_without_nul)]


class UsageRecorded(EventData):
    """One measurement of a metric for a tenant, as emitted by a platform service."""

    metric: str = Field(
        strict=True,
        pattern=METER_KEY_PATTERN,
        description="Meter key (from the meter catalogue).",
        examples=["api_calls"],
    )
    value: float = Field(
        strict=True,
        ge=-USAGE_VALUE_BOUND,
        le=USAGE_VALUE_BOUND,
        description=(
            "Amount measured (1 for a count): a JSON number, at most 1e15 in magnitude; "
            "negative only for meters that are not counters."
        ),
        examples=[1],
    )
    occurred_at: Timestamp = Field(
        description="When the usage happened (not when it was sent); RFC 3339 with a zone.",
        examples=["2026-12-01T10:00:00Z"],
    )
    properties: UsageProperties = Field(
        default_factory=dict,
        description=(
            "Dimensions of the measurement (route, user, region…): strings, booleans, "
            "or numbers at most 1e15 in magnitude (send identifiers as strings)."
        ),
        examples=[{"route": "/tenants/{id}", "method": "GET", "status": 200}],
        json_schema_extra=_property_names_schema,
    )


# --------------------------------------------------------------------- usage.alerts
class _QuotaFacts(EventData):
    metric: str = Field(examples=["api_calls"])
    plan: str = _plan
    limit: float = Field(description="The plan's limit for the period.", examples=[100000])
    value: float = Field(description="Usage in the period when crossed.", examples=[80012])
    period_start: date = Field(examples=["2026-12-01"])
    period_end: date = Field(description="Exclusive end of the period.", examples=["2027-01-01"])


class UsageThresholdReached(_QuotaFacts):
    """A tenant's usage crossed a warning threshold (e.g. 80 %) of its plan's limit."""

    threshold_percent: int = Field(ge=1, le=100, examples=[80])


class QuotaExceeded(_QuotaFacts):
    """A tenant's usage crossed 100 % of its plan's limit in the period."""

    limit_kind: Literal["soft", "hard"] = Field(examples=["hard"])


class LineItem(FrozenModel):
    """A rated line of a billing period."""

    metric: str = Field(examples=["api_calls"])
    quantity: PlainDecimal = Field(examples=["120000"])
    included: PlainDecimal = Field(examples=["100000"])
    overage: PlainDecimal = Field(examples=["20000"])
    unit_price: PlainDecimal = Field(examples=["0.0002"])
    amount: PlainDecimal = Field(examples=["4.00"])


class BillingPeriodClosed(EventData):
    """A billing period ended; the final, rated figures for an external billing system."""

    plan: str = _plan
    period_start: date = Field(examples=["2026-11-01"])
    period_end: date = Field(examples=["2026-12-01"])
    currency: str = Field(default="USD", examples=["USD"])
    base_fee: PlainDecimal = Field(examples=["49.00"])
    line_items: list[LineItem] = Field(default_factory=list)
    total: PlainDecimal = Field(examples=["53.00"])


# --------------------------------------------------------------------- onboarding.events
class OnboardingStarted(EventData):
    """A tenant's onboarding workflow started."""

    workflow_id: Uuid = Field(examples=[_WORKFLOW])
    plan: str = _plan
    steps: list[str] = Field(examples=[["invite_admin", "configure_tenant", "setup_billing"]])


class OnboardingStepCompleted(EventData):
    """One step of an onboarding workflow was completed."""

    workflow_id: Uuid = Field(examples=[_WORKFLOW])
    step_key: str = Field(examples=["configure_tenant"])
    completed_by: str | None = Field(default=None, examples=[_USER])
    percent_complete: int = Field(ge=0, le=100, examples=[66])


class InvitationSent(EventData):
    """An invitation to join a tenant was sent by email."""

    invitation_id: Uuid = Field(examples=[_INVITATION])
    email: str = Field(examples=["ada@acme.example"])
    role: Role = Field(examples=["tenant_admin"])
    expires_at: Timestamp = Field(examples=["2026-12-08T10:00:00Z"])


class InvitationAccepted(EventData):
    """An invitation was accepted: the user joins the tenant with the invited role."""

    invitation_id: Uuid = Field(examples=[_INVITATION])
    email: str = Field(examples=["ada@acme.example"])
    role: Role = Field(examples=["tenant_admin"])
    user_id: str = Field(max_length=200, examples=[_USER])


class InvitationExpired(EventData):
    """An invitation passed its expiry without being accepted."""

    invitation_id: Uuid = Field(examples=[_INVITATION])
    email: str = Field(examples=["ada@acme.example"])


class OnboardingCompleted(EventData):
    """Every required onboarding step is done; tenant-svc activates the tenant."""

    workflow_id: Uuid = Field(examples=[_WORKFLOW])
    completed_at: Timestamp = Field(examples=["2026-12-01T11:00:00Z"])


# --------------------------------------------------------------------- envelopes
class TenantCreatedEvent(CloudEvent):
    topic = topics.TENANT_EVENTS
    type: Literal["stellara.tenant.created.v1"] = "stellara.tenant.created.v1"
    data: TenantCreated


class TenantUpdatedEvent(CloudEvent):
    topic = topics.TENANT_EVENTS
    type: Literal["stellara.tenant.updated.v1"] = "stellara.tenant.updated.v1"
    data: TenantUpdated


class TenantActivatedEvent(CloudEvent):
    topic = topics.TENANT_EVENTS
    type: Literal["stellara.tenant.activated.v1"] = "stellara.tenant.activated.v1"
    data: TenantActivated


class TenantSuspendedEvent(CloudEvent):
    topic = topics.TENANT_EVENTS
    type: Literal["stellara.tenant.suspended.v1"] = "stellara.tenant.suspended.v1"
    data: TenantSuspended


class TenantDeletedEvent(CloudEvent):
    topic = topics.TENANT_EVENTS
    type: Literal["stellara.tenant.deleted.v1"] = "stellara.tenant.deleted.v1"
    data: TenantDeleted


class TenantPlanChangedEvent(CloudEvent):
    topic = topics.TENANT_EVENTS
    type: Literal["stellara.tenant.plan_changed.v1"] = "stellara.tenant.plan_changed.v1"
    data: TenantPlanChanged


class TenantConfigChangedEvent(CloudEvent):
    topic = topics.TENANT_EVENTS
    type: Literal["stellara.tenant.config_changed.v1"] = "stellara.tenant.config_changed.v1"
    data: TenantConfigChanged


class MemberAddedEvent(CloudEvent):
    topic = topics.TENANT_EVENTS
    type: Literal["stellara.tenant.member_added.v1"] = "stellara.tenant.member_added.v1"
    data: MemberAdded


class MemberRemovedEvent(CloudEvent):
    topic = topics.TENANT_EVENTS
    type: Literal["stellara.tenant.member_removed.v1"] = "stellara.tenant.member_removed.v1"
    data: MemberRemoved


class TenantSnapshotEvent(CloudEvent):
    topic = topics.TENANT_STATE
    type: Literal["stellara.tenant.snapshot.v1"] = "stellara.tenant.snapshot.v1"
    data: TenantSnapshot


class UsageRecordedEvent(CloudEvent):
    topic = topics.USAGE_RECORDED
    type: Literal["stellara.usage.recorded.v1"] = "stellara.usage.recorded.v1"
    data: UsageRecorded


class UsageThresholdReachedEvent(CloudEvent):
    topic = topics.USAGE_ALERTS
    type: Literal["stellara.usage.threshold_reached.v1"] = "stellara.usage.threshold_reached.v1"
    data: UsageThresholdReached


class QuotaExceededEvent(CloudEvent):
    topic = topics.USAGE_ALERTS
    type: Literal["stellara.usage.quota_exceeded.v1"] = "stellara.usage.quota_exceeded.v1"
    data: QuotaExceeded


class BillingPeriodClosedEvent(CloudEvent):
    topic = topics.USAGE_ALERTS
    type: Literal["stellara.usage.billing_period_closed.v1"] = (
        "stellara.usage.billing_period_closed.v1"
    )
    data: BillingPeriodClosed


class OnboardingStartedEvent(CloudEvent):
    topic = topics.ONBOARDING_EVENTS
    type: Literal["stellara.onboarding.started.v1"] = "stellara.onboarding.started.v1"
    data: OnboardingStarted


class OnboardingStepCompletedEvent(CloudEvent):
    topic = topics.ONBOARDING_EVENTS
    type: Literal["stellara.onboarding.step_completed.v1"] = "stellara.onboarding.step_completed.v1"
    data: OnboardingStepCompleted


class InvitationSentEvent(CloudEvent):
    topic = topics.ONBOARDING_EVENTS
    type: Literal["stellara.onboarding.invitation_sent.v1"] = (
        "stellara.onboarding.invitation_sent.v1"
    )
    data: InvitationSent


class InvitationAcceptedEvent(CloudEvent):
    topic = topics.ONBOARDING_EVENTS
    type: Literal["stellara.onboarding.invitation_accepted.v1"] = (
        "stellara.onboarding.invitation_accepted.v1"
    )
    data: InvitationAccepted


class InvitationExpiredEvent(CloudEvent):
    topic = topics.ONBOARDING_EVENTS
    type: Literal["stellara.onboarding.invitation_expired.v1"] = (
        "stellara.onboarding.invitation_expired.v1"
    )
    data: InvitationExpired


class OnboardingCompletedEvent(CloudEvent):
    topic = topics.ONBOARDING_EVENTS
    type: Literal["stellara.onboarding.completed.v1"] = "stellara.onboarding.completed.v1"
    data: OnboardingCompleted
