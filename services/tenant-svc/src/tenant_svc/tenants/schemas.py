"""HTTP models of tenants (requests and responses, not events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from stellara_contracts.events import TenantStatus
from tenant_svc.models import Tenant
from tenant_svc.tenants.service import allowed_transitions

_ID = "5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11"


class TenantCreate(BaseModel):
    """A new tenant; it starts `pending` until onboarding completes or an operator activates it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Acme Corp",
                    "slug": "acme",
                    "plan": "starter",
                    "metadata": {"region": "eu"},
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200, description="Display name.")
    slug: str = Field(
        min_length=3,
        max_length=63,
        description="DNS label (lowercase letters, digits, hyphens; 3–63 characters), unique "
        "for ever; reserved words are refused.",
    )
    plan: str | None = Field(
        default=None, description="Plan key from the plan catalogue; the default plan if left out."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free-form JSON object, size-bounded."
    )


class TenantUpdate(BaseModel):
    """New values of a tenant's mutable fields; fields left out keep their value.

    The slug never changes. Send `If-Match` with the ETag you read to refuse the
    update (412) when someone changed the tenant in between.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Acme Inc", "plan": "pro"}]},
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    plan: str | None = Field(default=None, description="Moving plan emits TenantPlanChanged.")
    metadata: dict[str, Any] | None = Field(default=None, description="Replaces the metadata.")


class SuspendRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "Unpaid invoice 2026-11"}]}
    )

    reason: str = Field(
        min_length=1, max_length=500, description="Why, in words the tenant's admins can act on."
    )


class TenantOut(BaseModel):
    """A tenant. The response's ETag header carries its version."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": _ID,
                    "slug": "acme",
                    "name": "Acme Corp",
                    "plan": "starter",
                    "status": "active",
                    "status_reason": None,
                    "metadata": {"region": "eu"},
                    "version": 3,
                    "allowed_transitions": ["suspended", "deleted"],
                    "created_at": "2026-12-01T10:00:00Z",
                    "updated_at": "2026-12-01T10:05:00Z",
                    "deleted_at": None,
                }
            ]
        }
    )

    id: UUID
    slug: str
    name: str
    plan: str
    status: TenantStatus
    status_reason: str | None = Field(description="Why it is suspended or deleted.")
    metadata: dict[str, Any]
    version: int = Field(description="Bumped by every change; the ETag.")
    allowed_transitions: list[TenantStatus] = Field(
        description="Statuses the lifecycle allows from here."
    )
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        return cls(
            id=tenant.id,
            slug=tenant.slug,
            name=tenant.name,
            plan=tenant.plan,
            status=TenantStatus(tenant.status),
            status_reason=tenant.status_reason,
            metadata=tenant.attributes,
            version=tenant.version,
            allowed_transitions=[TenantStatus(s) for s in allowed_transitions(tenant.status)],
            created_at=tenant.created_at,
            updated_at=tenant.updated_at,
            deleted_at=tenant.deleted_at,
        )


class ReceivedEventOut(BaseModel):
    """An event another service sent about the tenant, and what tenant-svc did with it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
                    "type": "stellara.usage.quota_exceeded.v1",
                    "outcome": "suspended",
                    "detail": {"metric": "api_calls", "limit": 100000, "value": 100012},
                    "received_at": "2026-12-01T10:00:00Z",
                }
            ]
        }
    )

    event_id: UUID
    type: str
    outcome: str = Field(description="`activated`, `suspended`, `member added`, `recorded: …`, …")
    detail: dict[str, Any]
    received_at: datetime
