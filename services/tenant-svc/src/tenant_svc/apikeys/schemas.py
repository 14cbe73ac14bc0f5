"""HTTP models of API keys and their verification."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from stellara_contracts.events import TenantStatus
from stellara_kit.bounds import Instant
from tenant_svc.models import ApiKey

_KEY_ID = "e3b0c442-98fc-4c14-9afb-f4c8996fb924"
_TENANT = "5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11"


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "billing worker",
                    "scopes": ["usage:write", "tenant:read"],
                    "expires_at": "2027-12-01T00:00:00Z",
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200, description="What the key is for.")
    scopes: list[str] = Field(min_length=1, max_length=50, description="What the key may do.")
    expires_at: Instant | None = Field(default=None, description="Never expires when left out.")


class ApiKeyOut(BaseModel):
    """An API key without its secret."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": _KEY_ID,
                    "tenant_id": _TENANT,
                    "name": "billing worker",
                    "prefix": "stk_3f9a1c0d5e7b2a64",
                    "scopes": ["tenant:read", "usage:write"],
                    "created_at": "2026-12-01T10:00:00Z",
                    "created_by": "8d7f5a9c-2b1e-4c3d-9e8f-7a6b5c4d3e2f",
                    "expires_at": "2027-12-01T00:00:00Z",
                    "revoked_at": None,
                }
            ]
        }
    )

    id: UUID
    tenant_id: UUID
    name: str
    prefix: str = Field(description="The key's public start, to recognise it in logs and lists.")
    scopes: list[str]
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey, prefix: str) -> ApiKeyOut:
        return cls(
            id=key.id,
            tenant_id=key.tenant_id,
            name=key.name,
            prefix=f"{prefix}_{key.lookup_id}",
            scopes=list(key.scopes),
            created_at=key.created_at,
            created_by=key.created_by,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
        )


class ApiKeyCreated(ApiKeyOut):
    """A new key with its secret: shown this once, never again."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": _KEY_ID,
                    "tenant_id": _TENANT,
                    "name": "billing worker",
                    "prefix": "stk_3f9a1c0d5e7b2a64",
                    "secret": "stk_3f9a1c0d5e7b2a64_q7X2b9m0K4pLr8sT1vW3yZ5aC6dE0fG2hJ4kN7uQ9xY",
                    "scopes": ["tenant:read", "usage:write"],
                    "created_at": "2026-12-01T10:00:00Z",
                    "created_by": "8d7f5a9c-2b1e-4c3d-9e8f-7a6b5c4d3e2f",
                    "expires_at": None,
                    "revoked_at": None,
                }
            ]
        }
    )

    secret: str = Field(description="The whole key; store it now, it cannot be shown again.")


class VerifyRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"key": "stk_3f9a1c0d5e7b2a64_q7X2b9m0K4pLr8sT1vW3yZ5aC6dE0fG2hJ4kN7uQ9xY"}
            ]
        },
    )

    key: str = Field(min_length=1, max_length=512, description="The key a client presented.")


class VerifyResult(BaseModel):
    """`valid: false` and nothing else for unknown, revoked, expired or deleted-tenant keys."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "valid": True,
                    "key_id": _KEY_ID,
                    "tenant_id": _TENANT,
                    "tenant_slug": "acme",
                    "tenant_status": "active",
                    "scopes": ["tenant:read", "usage:write"],
                    "expires_at": None,
                },
                {"valid": False},
            ]
        }
    )

    valid: bool
    key_id: UUID | None = None
    tenant_id: UUID | None = None
    tenant_slug: str | None = None
    tenant_status: TenantStatus | None = Field(
        default=None, description="A suspended tenant's keys are valid; refusing them is policy."
    )
    scopes: list[str] | None = None
    expires_at: datetime | None = None
