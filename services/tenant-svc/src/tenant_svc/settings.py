"""tenant-svc settings: environment variables prefixed ``TENANT_SVC_``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from stellara_kit.settings import ServiceSettings
from tenant_svc.config.catalogue import (
    BUILTIN_CONFIG_DEFAULTS,
    BUILTIN_CONFIG_SCHEMAS,
    CONFIG_CATEGORIES,
)

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61})[a-z0-9]$")

BUILTIN_RESERVED_SLUGS: tuple[str, ...] = (
    "admin",
    "api",
    "app",
    "assets",
    "auth",
    "billing",
    "by-slug",
    "default",
    "docs",
    "help",
    "internal",
    "login",
    "mail",
    "metrics",
    "platform",
    "root",
    "static",
    "status",
    "stellara",
    "support",
    "system",
    "tenants",
    "www",
)


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="TENANT_SVC_", extra="ignore", populate_by_name=True
    )

    service_name: str = Field(
        default="tenant-svc", description="Name in logs, metrics and event sources."
    )
    http_port: int = Field(default=8101, ge=1, le=65535, description="Port the HTTP server binds.")

    # ---------------------------------------------------------------- default tenant
    default_tenant_slug: str = Field(
        default="main",
        validation_alias=AliasChoices("TENANT_SVC_DEFAULT_TENANT_SLUG", "DEFAULT_TENANT_SLUG"),
        description="Slug of the tenant created (once, active) at startup for single-tenant "
        "callers; also read from plain `DEFAULT_TENANT_SLUG`.",
    )
    default_tenant_name: str = Field(
        default="Main", min_length=1, max_length=200, description="Name of the default tenant."
    )
    default_tenant_plan: str = Field(
        default="enterprise",
        description="Plan of the default tenant (an existing single-tenant install should not "
        "start on a capped plan).",
    )

    # ---------------------------------------------------------------- tenants
    plans: list[str] = Field(
        default_factory=lambda: ["free", "starter", "pro", "enterprise"],
        min_length=1,
        description="Plan keys of the plan catalogue a tenant may be on (JSON list).",
    )
    default_plan: str = Field(
        default="free", description="Plan of a new tenant when the request names none."
    )
    reserved_slugs: list[str] = Field(
        default_factory=lambda: list(BUILTIN_RESERVED_SLUGS),
        description="Slugs no tenant may take (JSON list; replaces the built-in list).",
    )
    metadata_max_bytes: int = Field(
        default=8192, ge=2, le=1_048_576, description="Largest tenant `metadata`, as JSON bytes."
    )

    # ---------------------------------------------------------------- configuration
    config_file: Path | None = Field(
        default=None,
        description="JSON or YAML file with `defaults` (`category.key` → value), `schemas` "
        "(`category.key` → JSON Schema) and `closed_categories` (list), merged over the "
        "built-in set and the settings below.",
    )
    config_defaults: dict[str, Any] = Field(
        default_factory=lambda: dict(BUILTIN_CONFIG_DEFAULTS),
        description="Platform configuration defaults, `category.key` → value (JSON object).",
    )
    config_schemas: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: dict(BUILTIN_CONFIG_SCHEMAS),
        description="JSON Schemas of known keys, `category.key` → schema (JSON object).",
    )
    closed_config_categories: list[str] = Field(
        default_factory=list,
        description="Categories that accept only keys with a schema (JSON list).",
    )
    config_value_max_bytes: int = Field(
        default=16384,
        ge=16,
        le=1_048_576,
        description="Largest configuration value, as JSON bytes.",
    )
    config_bulk_max_changes: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Most keys one bulk configuration change may touch.",
    )

    # ---------------------------------------------------------------- API keys
    api_key_scopes: list[str] = Field(
        default_factory=lambda: [
            "tenant:read",
            "tenant:write",
            "config:read",
            "config:write",
            "members:read",
            "usage:read",
            "usage:write",
        ],
        description="Scopes an API key may be given (JSON list).",
    )
    api_key_prefix: str = Field(
        default="stk",
        pattern=r"^[a-z]{2,8}$",
        description="Prefix of every API key secret (so leaked keys are recognisable).",
    )

    # ---------------------------------------------------------------- process roles
    consume_events: bool = Field(
        default=True,
        description="Run the Kafka subscribers (`onboarding.events`, `usage.alerts`) in this "
        "process; false makes an HTTP-only replica.",
    )

    # ---------------------------------------------------------------- HTTP
    idempotency_retention_hours: float = Field(
        default=24, gt=0, le=24 * 30, description="How long an `Idempotency-Key` is remembered."
    )
    page_size_default: int = Field(
        default=50, ge=1, le=1000, description="Items a list page holds when `limit` is not given."
    )
    page_size_max: int = Field(
        default=200, ge=1, le=1000, description="Most items a list page may hold."
    )
    import_batch_max: int = Field(
        default=1000, ge=1, le=50_000, description="Most rows one member import request may hold."
    )

    @field_validator("default_tenant_slug")
    @classmethod
    def _slug_shape(cls, value: str) -> str:
        if not SLUG_PATTERN.match(value):
            raise ValueError("default_tenant_slug must be a DNS label of 3-63 characters")
        return value

    @field_validator("closed_config_categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(CONFIG_CATEGORIES))
        if unknown:
            raise ValueError(f"unknown configuration categories: {', '.join(unknown)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        for name in ("default_plan", "default_tenant_plan"):
            if getattr(self, name) not in self.plans:
                raise ValueError(f"{name} {getattr(self, name)!r} is not one of plans {self.plans}")
        if self.default_tenant_slug in self.reserved_slugs:
            raise ValueError("default_tenant_slug is one of the reserved slugs")
        if self.page_size_default > self.page_size_max:
            raise ValueError("page_size_default is larger than page_size_max")
        return self
