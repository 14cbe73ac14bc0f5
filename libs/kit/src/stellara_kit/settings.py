"""The settings base every service's ``Settings`` class extends."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: secrets that ship as defaults for local use; startup refuses them outside dev/test
PLACEHOLDER_SECRETS = frozenset(
    {
        "dev-internal-secret-not-for-production-use",
        "dev-jwt-secret-not-for-production-use",
        "change-me",
        "replace-me",
        "replace-with-a-real-secret",
    }
)


class ServiceSettings(BaseSettings):
    """Settings shared by every service.

    Each service subclasses it with its own ``env_prefix`` (``TENANT_SVC_`` …);
    the class is built once in ``create_app`` and passed down.
    """

    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    service_name: str = Field(description="Name in logs, metrics and event sources.")
    environment: Literal["dev", "test", "prod"] = Field(
        default="dev", description="`prod` refuses placeholder secrets."
    )
    database_url: str = Field(
        default="postgresql+asyncpg://localhost/postgres",
        description="Runtime database URL (a role that owns no table; RLS applies).",
    )
    migration_database_url: str | None = Field(
        default=None, description="Database URL of the schema owner, for migrations."
    )
    db_pool_size: int = Field(default=10, ge=1, le=200, description="Connections per process.")
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:59092", description="Kafka bootstrap servers, comma separated."
    )
    topic_prefix: str = Field(
        default="", description="Prefix of every topic name (isolates test runs or stages)."
    )
    consumer_group: str | None = Field(
        default=None, description="Kafka consumer group; defaults to the service name."
    )
    consumer_max_retries: int = Field(
        default=3, ge=0, le=20, description="Retries of a failing event before its DLQ record."
    )
    consumer_retry_backoff_ms: int = Field(
        default=200, ge=0, description="First retry delay; doubles on each retry."
    )
    relay_batch_size: int = Field(default=500, ge=1, le=10_000, description="Outbox rows a send.")
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body accepted (413 above)."
    )
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    http_port: int = Field(default=8000, ge=1, le=65535, description="Port the HTTP server binds.")
    log_level: str = Field(default="INFO", description="Python log level.")
    log_json: bool = Field(default=True, description="JSON log lines (false: plain text).")
    internal_token_secret: SecretStr = Field(
        default=SecretStr("dev-internal-secret-not-for-production-use"),
        description="HS256 key of the short-lived internal tokens the gateway mints.",
    )
    internal_token_issuer: str = Field(default="stellara-gateway", description="Their `iss`.")
    internal_token_audience: str = Field(default="stellara-internal", description="Their `aud`.")

    @property
    def group_id(self) -> str:
        return self.consumer_group or self.service_name

    @property
    def owner_database_url(self) -> str:
        return self.migration_database_url or self.database_url

    def topic(self, name: str) -> str:
        """The physical name of a logical topic (with this deployment's prefix)."""
        return f"{self.topic_prefix}{name}"

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.environment == "prod":
            for name, value in self:
                if isinstance(value, SecretStr) and value.get_secret_value() in PLACEHOLDER_SECRETS:
                    raise ValueError(f"{name} is a placeholder: set a real secret for prod")
        return self
