"""HTTP models of the public API, as the gateway documents them.

The gateway does not re-validate what it forwards: the owning service
validates requests and shapes responses. These models describe the public
contract in the OpenAPI document (schemas and examples); the ingestion
models at the end are the gateway's own and are enforced.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from stellara_contracts.envelope import Timestamp, Uuid
from stellara_contracts.events import ConfigChange, TenantStatus, UsageProperties, UsageRecorded

TENANT = "5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11"
USER = "8d7f5a9c-2b1e-4c3d-9e8f-7a6b5c4d3e2f"
INVITATION = "c2a1b0d9-8e7f-4a6b-9c5d-4e3f2a1b0c9d"
WORKFLOW = "a9b8c7d6-e5f4-4a3b-8c2d-1e0f9a8b7c6d"
API_KEY = "3e2d1c0b-9a8f-4e7d-8c6b-5a4f3e2d1c0b"
EVENT = "0f8fad5b-d9cb-469f-a165-70867728950e"
WHEN = "2026-12-01T10:00:00Z"


def _example(value: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [value]})


_cursor = Field(
    default=None,
    description="Pass as `cursor` for the next page; null on the last page.",
    examples=[None],
)


# --------------------------------------------------------------------- tenants
class TenantCreate(BaseModel):
    """A new tenant; it starts `pending` until onboarding completes."""

    model_config = _example({"slug": "acme", "name": "Acme Corp", "plan": "starter"})

    slug: str = Field(description="DNS-label slug, unique for ever.", examples=["acme"])
    name: str = Field(description="Display name.", examples=["Acme Corp"])
    plan: str | None = Field(default=None, description="Plan key.", examples=["starter"])
    metadata: dict[str, Any] = Field(default_factory=dict, examples=[{"region": "eu"}])


class TenantUpdate(BaseModel):
    """Changes to a tenant (send only what changes; the plan is platform_admin's)."""

    model_config = _example({"name": "Acme Inc"})

    name: str | None = Field(default=None, examples=["Acme Inc"])
    plan: str | None = Field(default=None, examples=["pro"])
    metadata: dict[str, Any] | None = Field(default=None, examples=[{"region": "eu"}])


class SuspendRequest(BaseModel):
    """Why the tenant is suspended (shown to its users)."""

    model_config = _example({"reason": "Unpaid invoice 2026-11"})

    reason: str = Field(examples=["Unpaid invoice 2026-11"])


class Tenant(BaseModel):
    """A tenant."""

    id: UUID = Field(examples=[TENANT])
    slug: str = Field(examples=["acme"])
    name: str = Field(examples=["Acme Corp"])
    plan: str = Field(examples=["starter"])
    status: TenantStatus = Field(examples=["active"])
    status_reason: str | None = Field(default=None, examples=[None])
    metadata: dict[str, Any] = Field(default_factory=dict, examples=[{"region": "eu"}])
    version: int = Field(description="Bumped by every change; the ETag.", examples=[3])
    allowed_transitions: list[TenantStatus] = Field(examples=[["suspended", "deleted"]])
    created_at: datetime = Field(examples=[WHEN])
    updated_at: datetime = Field(examples=[WHEN])
    deleted_at: datetime | None = Field(default=None, examples=[None])


class TenantPage(BaseModel):
    """A page of tenants."""

    items: list[Tenant]
    next_cursor: str | None = _cursor


# --------------------------------------------------------------------- configuration
Category = Literal["general", "auth", "billing", "features", "integrations"]


class ConfigEntry(BaseModel):
    """One key's value and where it came from (`tenant` override or platform `default`)."""

    category: Category = Field(examples=["billing"])
    key: str = Field(examples=["hard_limit_action"])
    value: Any = Field(examples=["suspend"])
    source: Literal["default", "tenant"] = Field(examples=["tenant"])
    version: int | None = Field(default=None, examples=[2])
    updated_at: datetime | None = Field(default=None, examples=[WHEN])
    updated_by: str | None = Field(default=None, examples=[USER])


class TenantConfig(BaseModel):
    """A tenant's configuration."""

    tenant_id: UUID = Field(examples=[TENANT])
    effective: bool = Field(description="Whether platform defaults are merged in.")
    values: dict[str, dict[str, Any]] = Field(description="category → key → value.")
    items: list[ConfigEntry]


class ConfigSet(BaseModel):
    """Set one key (creates it or replaces its value)."""

    model_config = _example({"category": "billing", "key": "hard_limit_action", "value": "suspend"})

    category: Category = Field(examples=["billing"])
    key: str = Field(examples=["hard_limit_action"])
    value: Any = Field(examples=["suspend"])


class ConfigValue(BaseModel):
    """The new value of the key named in the path (`category.key`)."""

    model_config = _example({"value": "suspend"})

    value: Any = Field(examples=["suspend"])


class BulkChange(BaseModel):
    """One change of a bulk update."""

    op: Literal["set", "delete"] = Field(default="set", examples=["set"])
    category: Category = Field(examples=["billing"])
    key: str = Field(examples=["hard_limit_action"])
    value: Any = Field(default=None, examples=["suspend"])


class ConfigBulk(BaseModel):
    """Several changes applied together (one transaction, one event)."""

    model_config = _example(
        {
            "changes": [
                {
                    "op": "set",
                    "category": "billing",
                    "key": "hard_limit_action",
                    "value": "suspend",
                },
                {"op": "delete", "category": "general", "key": "timezone"},
            ]
        }
    )

    changes: list[BulkChange] = Field(min_length=1)


class ConfigChanges(BaseModel):
    """What a bulk update changed."""

    changes: list[ConfigChange]


class ConfigRollback(BaseModel):
    """Bring back the value a key had at a version of its history."""

    model_config = _example({"version": 1})

    version: int = Field(ge=1, examples=[1])


class ConfigHistoryEntry(BaseModel):
    """One recorded change of a key."""

    id: int = Field(examples=[17])
    category: str = Field(examples=["billing"])
    key: str = Field(examples=["hard_limit_action"])
    version: int = Field(examples=[2])
    action: Literal["set", "delete"] = Field(examples=["set"])
    old_value: Any = Field(default=None, examples=["notify"])
    new_value: Any = Field(default=None, examples=["suspend"])
    changed_by: str | None = Field(default=None, examples=[USER])
    changed_at: datetime = Field(examples=[WHEN])


class ConfigHistoryPage(BaseModel):
    """A page of configuration changes, newest first."""

    items: list[ConfigHistoryEntry]
    next_cursor: str | None = _cursor


# --------------------------------------------------------------------- members
class MemberIn(BaseModel):
    """Add a user to the tenant with a role."""

    model_config = _example({"user_id": USER, "email": "ada@acme.example", "role": "user"})

    user_id: str = Field(examples=[USER])
    email: str | None = Field(default=None, examples=["ada@acme.example"])
    role: Literal["tenant_admin", "user"] = Field(default="user", examples=["user"])


class MemberRoleUpdate(BaseModel):
    """A member's new role."""

    model_config = _example({"role": "tenant_admin"})

    role: Literal["tenant_admin", "user"] = Field(examples=["tenant_admin"])


class Member(BaseModel):
    """A user of a tenant."""

    user_id: str = Field(examples=[USER])
    email: str | None = Field(default=None, examples=["ada@acme.example"])
    name: str | None = Field(default=None, examples=["Ada Lovelace"])
    role: Literal["tenant_admin", "user"] = Field(examples=["user"])
    via: Literal["api", "invitation", "import"] = Field(examples=["api"])
    created_at: datetime = Field(examples=[WHEN])
    updated_at: datetime = Field(examples=[WHEN])


class MemberPage(BaseModel):
    """A page of members."""

    items: list[Member]
    next_cursor: str | None = _cursor


class MemberImport(BaseModel):
    """Users to add in one go (rows with `user_id`, `email`, `role`)."""

    model_config = _example(
        {"rows": [{"user_id": USER, "email": "ada@acme.example", "role": "user"}]}
    )

    rows: list[dict[str, Any]]


class ImportedRow(BaseModel):
    line: int = Field(examples=[1])
    outcome: Literal["created", "skipped", "invalid"] = Field(examples=["created"])
    user_id: str | None = Field(default=None, examples=[USER])
    email: str | None = Field(default=None, examples=["ada@acme.example"])
    role: str | None = Field(default=None, examples=["user"])
    reason: str | None = Field(default=None, examples=[None])


class ImportReport(BaseModel):
    """What an import did, row by row."""

    created: int = Field(examples=[1])
    skipped: int = Field(examples=[0])
    invalid: int = Field(examples=[0])
    results: list[ImportedRow]


# --------------------------------------------------------------------- API keys
class ApiKeyCreate(BaseModel):
    """A new API key for machine clients of the tenant."""

    model_config = _example({"name": "billing-worker", "scopes": ["usage:write"]})

    name: str = Field(examples=["billing-worker"])
    scopes: list[str] = Field(
        description="`usage:write` (send usage), `usage:read`, `tenant:read`, `config:read`.",
        examples=[["usage:write"]],
    )
    expires_at: datetime | None = Field(default=None, examples=[None])


class ApiKey(BaseModel):
    """An API key (its secret is never shown again)."""

    id: UUID = Field(examples=[API_KEY])
    tenant_id: UUID = Field(examples=[TENANT])
    name: str = Field(examples=["billing-worker"])
    prefix: str = Field(
        description="The key's public start, to recognise it.", examples=["sk_3e2d"]
    )
    scopes: list[str] = Field(examples=[["usage:write"]])
    created_at: datetime = Field(examples=[WHEN])
    created_by: str | None = Field(default=None, examples=[USER])
    expires_at: datetime | None = Field(default=None, examples=[None])
    revoked_at: datetime | None = Field(default=None, examples=[None])


class ApiKeyCreated(ApiKey):
    """The new key, with its secret — shown this once only."""

    secret: str = Field(examples=["sk_3e2d1c0b_9f8e7d6c5b4a39281706f5e4d3c2b1a0"])


class ApiKeyPage(BaseModel):
    """A page of API keys."""

    items: list[ApiKey]
    next_cursor: str | None = _cursor


# --------------------------------------------------------------------- usage
class MetricUsage(BaseModel):
    """Usage of one metric in the current billing period."""

    metric: str = Field(examples=["api_calls"])
    value: float = Field(examples=[80012])
    limit: float | None = Field(default=None, examples=[100000])
    percent_of_limit: float | None = Field(default=None, examples=[80.0])


class UsageSummary(BaseModel):
    """A tenant's usage in the current billing period."""

    tenant_id: UUID = Field(examples=[TENANT])
    plan: str = Field(examples=["starter"])
    period_start: date = Field(examples=["2026-12-01"])
    period_end: date = Field(examples=["2027-01-01"])
    metrics: list[MetricUsage]


class DailyUsagePoint(BaseModel):
    """Usage of a metric on one day (UTC)."""

    day: date = Field(examples=["2026-12-01"])
    metric: str = Field(examples=["api_calls"])
    value: float = Field(examples=[2710])


class DailyUsage(BaseModel):
    """Daily usage of a tenant over a range of days."""

    tenant_id: UUID = Field(examples=[TENANT])
    items: list[DailyUsagePoint]


class TrendPoint(BaseModel):
    """Usage in one period and its change from the one before."""

    period_start: date = Field(examples=["2026-11-01"])
    value: float = Field(examples=[71200])
    change_percent: float | None = Field(default=None, examples=[12.5])


class UsageTrends(BaseModel):
    """How a metric's usage moves over periods."""

    tenant_id: UUID = Field(examples=[TENANT])
    metric: str = Field(examples=["api_calls"])
    granularity: Literal["day", "week", "month"] = Field(examples=["month"])
    points: list[TrendPoint]


class InvoiceLine(BaseModel):
    """A rated line of the invoice preview."""

    metric: str = Field(examples=["api_calls"])
    quantity: Decimal = Field(examples=["120000"])
    included: Decimal = Field(examples=["100000"])
    overage: Decimal = Field(examples=["20000"])
    unit_price: Decimal = Field(examples=["0.0002"])
    amount: Decimal = Field(examples=["4.00"])


class InvoicePreview(BaseModel):
    """What the current billing period would cost if it closed now."""

    tenant_id: UUID = Field(examples=[TENANT])
    plan: str = Field(examples=["starter"])
    period_start: date = Field(examples=["2026-12-01"])
    period_end: date = Field(examples=["2027-01-01"])
    currency: str = Field(examples=["USD"])
    base_fee: Decimal = Field(examples=["49.00"])
    line_items: list[InvoiceLine]
    total: Decimal = Field(examples=["53.00"])


class Plan(BaseModel):
    """A plan of the catalogue."""

    key: str = Field(examples=["starter"])
    name: str = Field(examples=["Starter"])
    currency: str = Field(examples=["USD"])
    base_fee: Decimal = Field(examples=["49.00"])
    limits: dict[str, float] = Field(examples=[{"api_calls": 100000}])
    hard_limits: bool = Field(default=False, examples=[False])


class PlanList(BaseModel):
    """Every plan."""

    items: list[Plan]


class MeterIn(BaseModel):
    """A new meter (a metric usage can be recorded for)."""

    model_config = _example(
        {"key": "workflow_runs", "name": "Workflow runs", "unit": "run", "aggregation": "sum"}
    )

    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$", examples=["workflow_runs"])
    name: str = Field(examples=["Workflow runs"])
    unit: str = Field(default="count", examples=["run"])
    aggregation: Literal["sum", "max", "count"] = Field(default="sum", examples=["sum"])


class Meter(MeterIn):
    """A meter."""


class MeterList(BaseModel):
    """Every meter."""

    items: list[Meter]


# --------------------------------------------------------------------- onboarding
class OnboardRequest(BaseModel):
    """Start (or restart) the tenant's onboarding."""

    model_config = _example({"plan": "starter"})

    plan: str | None = Field(default=None, examples=["starter"])


class OnboardingStep(BaseModel):
    """One step of the onboarding."""

    key: str = Field(examples=["configure_tenant"])
    title: str = Field(examples=["Configure the tenant"])
    required: bool = Field(examples=[True])
    status: str = Field(examples=["in_progress"])
    completed_at: datetime | None = Field(default=None, examples=[None])


class OnboardingStatus(BaseModel):
    """Where a tenant's onboarding stands."""

    tenant_id: UUID = Field(examples=[TENANT])
    workflow_id: UUID = Field(examples=[WORKFLOW])
    status: Literal["running", "completed", "cancelled"] = Field(examples=["running"])
    percent_complete: int = Field(ge=0, le=100, examples=[33])
    next_steps: list[str] = Field(examples=[["configure_tenant"]])
    steps: list[OnboardingStep]


class CompleteStep(BaseModel):
    """Complete a manual step (or skip an optional one)."""

    model_config = _example({"step_key": "configure_tenant", "payload": {"timezone": "UTC"}})

    step_key: str = Field(examples=["configure_tenant"])
    payload: dict[str, Any] | None = Field(default=None)
    skip: bool = Field(default=False)


class InvitationIn(BaseModel):
    """Invite someone to the tenant by email."""

    model_config = _example({"email": "ada@acme.example", "role": "tenant_admin"})

    email: str = Field(examples=["ada@acme.example"])
    role: Literal["tenant_admin", "user"] = Field(default="user", examples=["tenant_admin"])


class Invitation(BaseModel):
    """An invitation."""

    id: UUID = Field(examples=[INVITATION])
    tenant_id: UUID = Field(examples=[TENANT])
    email: str = Field(examples=["ada@acme.example"])
    role: str = Field(examples=["tenant_admin"])
    status: Literal["pending", "accepted", "revoked", "expired"] = Field(examples=["pending"])
    created_at: datetime = Field(examples=[WHEN])
    expires_at: datetime = Field(examples=["2026-12-08T10:00:00Z"])


class InvitationPage(BaseModel):
    """A page of invitations."""

    items: list[Invitation]
    next_cursor: str | None = _cursor


class AcceptedInvitation(BaseModel):
    """The invitation was accepted: the caller joins the tenant with the role."""

    invitation_id: UUID = Field(examples=[INVITATION])
    tenant_id: UUID = Field(examples=[TENANT])
    role: str = Field(examples=["tenant_admin"])


class Accepted(BaseModel):
    """The request was accepted and will be carried out."""

    status: str = Field(examples=["accepted"])


# --------------------------------------------------------------------- usage ingestion
class UsageEventIn(BaseModel):
    """One usage measurement sent by a client (the tenant comes from the credential)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EVENT,
                    "metric": "workflow_runs",
                    "value": 1,
                    "occurred_at": WHEN,
                    "properties": {"workflow": "nightly"},
                }
            ]
        }
    )

    # the fields of the contract's UsageRecorded (the ingestion reads each event with the
    # contract's decoder), so that the document says what is enforced
    id: Uuid | None = Field(
        default=None,
        description="Your id of the event; resending the same id never counts twice.",
    )
    metric: str = UsageRecorded.model_fields["metric"]
    value: float = UsageRecorded.model_fields["value"]
    occurred_at: Timestamp = UsageRecorded.model_fields["occurred_at"]
    properties: UsageProperties = UsageRecorded.model_fields["properties"]


class EventError(BaseModel):
    """Why one event of a batch was refused."""

    index: int = Field(description="Position of the event in the batch (0-based).", examples=[3])
    errors: list[str] = Field(examples=[["metric: String should match pattern"]])


class IngestionResult(BaseModel):
    """What happened to a batch: the accepted events are on Kafka (acknowledged)."""

    accepted: int = Field(examples=[999])
    rejected: int = Field(examples=[1])
    ids: list[UUID] = Field(description="Ids of the accepted events, in batch order.")
    errors: list[EventError] = Field(default_factory=list)
