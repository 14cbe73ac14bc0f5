"""onboarding-svc settings: environment variables prefixed ``ONBOARDING_SVC_``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from stellara_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ONBOARDING_SVC_", extra="ignore")

    service_name: str = Field(
        default="onboarding-svc", description="Name in logs, metrics and event sources."
    )
    http_port: int = Field(default=8103, ge=1, le=65535, description="Port the HTTP server binds.")

    # ---------------------------------------------------------------- workflows
    workflows_file: Path | None = Field(
        default=None,
        description="JSON or YAML file with onboarding workflow definitions per plan "
        "(`default` and `plans.<plan>`); the built-in default workflow applies otherwise.",
    )
    auto_start_onboarding: bool = Field(
        default=True,
        description="Start a tenant's onboarding when its `TenantCreated` event arrives "
        "(false: only `POST /tenants/{id}/onboard` starts it).",
    )

    # ---------------------------------------------------------------- invitations
    invitation_ttl_hours: float = Field(
        default=168, gt=0, le=24 * 90, description="How long an invitation can be accepted."
    )
    accept_url_template: str = Field(
        default="http://127.0.0.1:8000/invitations/{token}/accept",
        description="The accept link put in invitation emails; `{token}` is replaced by the "
        "URL-safe invitation token.",
    )

    # ---------------------------------------------------------------- mail
    smtp_host: str = Field(default="127.0.0.1", description="SMTP server host.")
    smtp_port: int = Field(default=1025, ge=1, le=65535, description="SMTP server port.")
    smtp_username: str | None = Field(
        default=None, description="SMTP user name; no authentication when unset."
    )
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_use_tls: bool = Field(
        default=False, description="Connect with implicit TLS (SMTPS, usually port 465)."
    )
    smtp_start_tls: bool = Field(
        default=False, description="Upgrade a plain connection with STARTTLS (usually port 587)."
    )
    smtp_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="Timeout of one SMTP conversation."
    )
    mail_from: str = Field(
        default="Stellara <no-reply@stellara.local>", description="Sender of invitation emails."
    )

    # ---------------------------------------------------------------- background work
    sender_interval_seconds: float = Field(
        default=2.0, gt=0, description="How often the mail sender looks for invitations to send."
    )
    sender_backoff_seconds: float = Field(
        default=5.0, ge=0, description="Delay after a failed send; doubles on each failure."
    )
    sender_max_backoff_seconds: float = Field(
        default=600.0, ge=0, description="Upper bound of the delay between send attempts."
    )
    sender_max_attempts: int = Field(
        default=8,
        ge=1,
        le=100,
        description="Send attempts before an invitation's delivery state becomes `failed`.",
    )
    sender_batch_size: int = Field(
        default=20, ge=1, le=1000, description="Invitations one sender round sends at most."
    )
    sweeper_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often expired invitations are looked for."
    )
    sweeper_batch_size: int = Field(
        default=200,
        ge=1,
        le=10_000,
        description="Invitations expired per transaction; a round takes batches until one is not full.",
    )

    @field_validator("accept_url_template")
    @classmethod
    def _template_has_token(cls, value: str) -> str:
        if "{token}" not in value:
            raise ValueError("accept_url_template must contain `{token}`")
        try:
            value.format(token="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"accept_url_template may only contain the `{{token}}` field: {exc}"
            ) from exc
        return value
