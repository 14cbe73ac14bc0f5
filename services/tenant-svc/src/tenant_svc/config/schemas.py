"""HTTP models of tenant configuration."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from stellara_contracts.events import ConfigChange
from stellara_kit.bounds import INT32_MAX
from tenant_svc.config.catalogue import CONFIG_CATEGORIES, KEY_MAX_LENGTH, KEY_PATTERN
from tenant_svc.config.service import ConfigValue
from tenant_svc.models import ConfigHistory

Category = Literal["general", "auth", "billing", "features", "integrations"]
assert set(Category.__args__) == set(CONFIG_CATEGORIES)  # type: ignore[attr-defined]

_key = Field(
    min_length=1,
    max_length=KEY_MAX_LENGTH,
    pattern=KEY_PATTERN.pattern,
    description="Key inside the category: lowercase letters, digits, `_`; parts joined by `.` or `-`.",
    examples=["hard_limit_action"],
)


class ConfigEntryOut(BaseModel):
    """One key's value and where it came from (`tenant` override or platform `default`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "category": "billing",
                    "key": "hard_limit_action",
                    "value": "suspend",
                    "source": "tenant",
                    "version": 2,
                    "updated_at": "2026-12-01T10:05:00Z",
                    "updated_by": "8d7f5a9c-2b1e-4c3d-9e8f-7a6b5c4d3e2f",
                }
            ]
        }
    )

    category: Category
    key: str
    value: Any
    source: Literal["tenant", "default"]
    version: int | None = Field(default=None, description="The key's version (tenant values).")
    updated_at: datetime | None = None
    updated_by: str | None = None

    @classmethod
    def of(cls, value: ConfigValue) -> ConfigEntryOut:
        return cls(
            category=value.category,
            key=value.key,
            value=value.value,
            source=value.source,
            version=value.version,
            updated_at=value.updated_at,
            updated_by=value.updated_by,
        )


class ConfigView(BaseModel):
    """A tenant's configuration: every entry, and the values by category."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant_id": "5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11",
                    "effective": True,
                    "values": {"billing": {"hard_limit_action": "suspend", "currency": "USD"}},
                    "items": [
                        {
                            "category": "billing",
                            "key": "currency",
                            "value": "USD",
                            "source": "default",
                        },
                        {
                            "category": "billing",
                            "key": "hard_limit_action",
                            "value": "suspend",
                            "source": "tenant",
                            "version": 2,
                        },
                    ],
                }
            ]
        }
    )

    tenant_id: UUID
    effective: bool = Field(description="Whether platform defaults are merged in.")
    values: dict[str, dict[str, Any]] = Field(description="category → key → value.")
    items: list[ConfigEntryOut]

    @classmethod
    def of(cls, tenant_id: UUID, effective: bool, values: list[ConfigValue]) -> ConfigView:
        by_category: dict[str, dict[str, Any]] = {}
        for value in values:
            by_category.setdefault(value.category, {})[value.key] = value.value
        return cls(
            tenant_id=tenant_id,
            effective=effective,
            values=by_category,
            items=[ConfigEntryOut.of(v) for v in values],
        )


class ConfigSet(BaseModel):
    """Set one key (creates it or replaces its value)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"category": "billing", "key": "hard_limit_action", "value": "suspend"}]
        },
    )

    category: Category
    key: str = _key
    value: Any = Field(
        description="Any JSON value; checked against the key's schema if it has one."
    )


class ConfigValueIn(BaseModel):
    """The new value of the key named in the path."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"value": "suspend"}]}
    )

    value: Any


class BulkChange(BaseModel):
    """One change of a bulk request."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["set", "delete"] = Field(default="set")
    category: Category
    key: str = _key
    value: Any = Field(default=None, description="The new value (`set` only).")


class ConfigBulk(BaseModel):
    """Many changes applied together: all of them, or none (422 naming every refused key)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "changes": [
                        {
                            "op": "set",
                            "category": "billing",
                            "key": "hard_limit_action",
                            "value": "suspend",
                        },
                        {
                            "op": "set",
                            "category": "features",
                            "key": "beta_dashboard",
                            "value": True,
                        },
                        {"op": "delete", "category": "general", "key": "locale"},
                    ]
                }
            ]
        },
    )

    changes: list[BulkChange] = Field(min_length=1)


class ConfigChangesOut(BaseModel):
    """What changed (values equal to the current one are left out), as in TenantConfigChanged."""

    changes: list[ConfigChange]


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": 1}]})

    version: int = Field(
        ge=1, le=INT32_MAX, description="The key's version to bring back (see the history)."
    )


class HistoryEntryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "category": "billing",
                    "key": "hard_limit_action",
                    "version": 2,
                    "action": "set",
                    "old_value": "notify",
                    "new_value": "suspend",
                    "changed_by": "8d7f5a9c-2b1e-4c3d-9e8f-7a6b5c4d3e2f",
                    "changed_at": "2026-12-01T10:05:00Z",
                }
            ]
        }
    )

    id: int
    category: str
    key: str
    version: int
    action: Literal["set", "delete"]
    old_value: Any = None
    new_value: Any = None
    changed_by: str | None
    changed_at: datetime

    @classmethod
    def of(cls, row: ConfigHistory) -> HistoryEntryOut:
        return cls(
            id=row.id,
            category=row.category,
            key=row.key,
            version=row.version,
            action=row.action,
            old_value=row.old_value,
            new_value=row.new_value,
            changed_by=row.changed_by,
            changed_at=row.changed_at,
        )
