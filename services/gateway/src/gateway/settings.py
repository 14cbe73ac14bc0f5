"""gateway settings: environment variables prefixed ``GATEWAY_``.

The three tenant-resolution settings are also read under their plain names
(``TENANT_HEADER_NAME``, ``TENANT_SUBDOMAIN_ENABLED``, ``DEFAULT_TENANT_SLUG``),
the names the design uses; the ``GATEWAY_`` name wins when both are set.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from stellara_contracts.patterns import METER_KEY_PATTERN
from stellara_kit.auth import (
    DEV_USER_TOKEN_SECRET,
    HMAC_ALGORITHMS,
    USER_TOKEN_AUDIENCE,
    USER_TOKEN_ISSUER,
)
from stellara_kit.settings import PLACEHOLDER_SECRETS, ServiceSettings

SYMMETRIC_ALGORITHMS = HMAC_ALGORITHMS
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def _aliases(name: str) -> AliasChoices:
    """The ``GATEWAY_`` variable first, then the plain one (the field name works as an
    argument through ``populate_by_name``)."""
    return AliasChoices(f"GATEWAY_{name.upper()}", name.upper())


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True)

    service_name: str = Field(
        default="gateway", description="Name in logs, metrics and event sources."
    )
    http_port: int = Field(default=8000, ge=1, le=65535, description="Port the HTTP server binds.")

    # ------------------------------------------------------------------ downstream services
    tenant_svc_url: str = Field(
        default="http://127.0.0.1:8101",
        description="Base URL of tenant-svc (tenants, config, members, API keys).",
    )
    usage_svc_url: str = Field(
        default="http://127.0.0.1:8102", description="Base URL of usage-svc (usage, plans, meters)."
    )
    onboarding_svc_url: str = Field(
        default="http://127.0.0.1:8103",
        description="Base URL of onboarding-svc (onboarding, invitations).",
    )
    downstream_connect_timeout_seconds: float = Field(
        default=1.0, gt=0, description="Time to open a connection to a service before 503."
    )
    downstream_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time a service may take to answer before 504."
    )
    downstream_read_retries: int = Field(
        default=2,
        ge=0,
        le=5,
        description="Retries of an idempotent read (GET) whose connection failed; writes are never retried.",
    )
    downstream_keepalive_seconds: float = Field(
        default=4.0,
        gt=0,
        description="Idle time after which a pooled connection is closed (below the services' "
        "own keep-alive timeout, uvicorn's 5 s).",
    )
    downstream_max_connections: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="Pooled connections (and requests in flight) per downstream service; "
        "more callers wait their turn in the gateway.",
    )

    # ------------------------------------------------------------------ authentication
    jwt_algorithms: list[str] = Field(
        default=["HS256"],
        description="Signing algorithms accepted for user tokens (pinned; the token's header "
        "never chooses). Either HMAC (HS*) or public-key algorithms, not both.",
    )
    jwt_secret: SecretStr = Field(
        default=SecretStr(DEV_USER_TOKEN_SECRET),
        description="Shared HS256 secret of user tokens (development); refused in prod.",
    )
    jwt_public_key_file: Path | None = Field(
        default=None, description="PEM public key verifying RS*/ES* user tokens."
    )
    jwks_file: Path | None = Field(
        default=None,
        description="JWKS file of public keys verifying RS*/ES* user tokens (chosen by `kid`).",
    )
    jwt_audience: str = Field(
        default=USER_TOKEN_AUDIENCE, description="Required `aud` of user tokens."
    )
    jwt_issuer: str = Field(default=USER_TOKEN_ISSUER, description="Required `iss` of user tokens.")
    jwt_leeway_seconds: int = Field(
        default=10, ge=0, le=300, description="Clock skew tolerated on `exp`/`nbf`."
    )
    api_key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="How long a verified (or refused) API key is remembered; a revocation "
        "takes effect within this time.",
    )
    api_key_cache_size: int = Field(
        default=10_000, ge=1, description="API keys remembered at most (oldest forgotten first)."
    )
    internal_token_ttl_seconds: int = Field(
        default=60, ge=5, le=900, description="Life of the internal token sent downstream."
    )

    # ------------------------------------------------------------------ tenant resolution
    tenant_header_name: str = Field(
        default="x-tenant-id",
        validation_alias=_aliases("tenant_header_name"),
        description="Header naming the tenant (an id or a slug). Also read as TENANT_HEADER_NAME.",
    )
    tenant_subdomain_enabled: bool = Field(
        default=False,
        validation_alias=_aliases("tenant_subdomain_enabled"),
        description="Resolve the tenant from the Host's first label (`acme.example.com`). "
        "Also read as TENANT_SUBDOMAIN_ENABLED.",
    )
    tenant_base_domain: str | None = Field(
        default=None,
        description="With subdomains on, only hosts under this domain name a tenant "
        "(unset: any host with three labels or more).",
    )
    default_tenant_slug: str = Field(
        default="main",
        validation_alias=_aliases("default_tenant_slug"),
        description="Tenant of callers whose token names none (single-tenant set-ups). "
        "Also read as DEFAULT_TENANT_SLUG.",
    )
    directory_wait_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How long a request that arrives before the tenant directory caught up "
        "waits for it (503 after).",
    )

    # ------------------------------------------------------------------ limits
    rate_limit_per_plan: dict[str, float] = Field(
        default={"free": 20.0, "starter": 100.0, "pro": 500.0, "enterprise": 2000.0},
        description="Requests per second a tenant may make, by plan (JSON object).",
    )
    rate_limit_default: float = Field(
        default=50.0, gt=0, description="Requests per second of a plan not listed above."
    )
    rate_limit_burst_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Bucket size, in seconds of the plan's rate (a burst a tenant may send at once).",
    )
    accept_attempts_per_minute_per_caller: float = Field(
        default=10.0,
        gt=0,
        description="Invitation accepts (`POST /invitations/{token}/accept`) one signed-in caller "
        "may try a minute, at once or spread (429 above): tokens cannot be guessed.",
    )
    accept_attempts_per_minute_per_address: float = Field(
        default=60.0,
        gt=0,
        description="Invitation accepts one client address may try a minute, whoever signs in "
        "(429 above).",
    )
    max_batch_events: int = Field(
        default=1000, ge=1, le=100_000, description="Most usage events in one ingestion request."
    )

    # ------------------------------------------------------------------ metering
    metering_enabled: bool = Field(
        default=True, description="Record an `api_calls` usage event for every tenant request."
    )
    metering_metric: str = Field(
        default="api_calls",
        pattern=METER_KEY_PATTERN,
        description="Meter key of those events.",
    )
    metering_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Metering events published in one batch."
    )
    metering_interval_seconds: float = Field(
        default=1.0, gt=0, description="Longest time a metering event waits before publishing."
    )
    metering_buffer_limit: int = Field(
        default=100_000,
        ge=1,
        description="Metering events held while Kafka is unreachable (oldest dropped beyond).",
    )
    kafka_ack_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Time Kafka may take to acknowledge usage events before the request fails (503).",
    )
    kafka_linger_ms: int = Field(
        default=5, ge=0, le=1000, description="Producer batching delay for usage events."
    )

    @field_validator("jwt_algorithms")
    @classmethod
    def _pinned_algorithms(cls, value: list[str]) -> list[str]:
        known = SYMMETRIC_ALGORITHMS | ASYMMETRIC_ALGORITHMS
        unknown = [a for a in value if a not in known]
        if not value or unknown:
            raise ValueError(f"pin one or more of {sorted(known)} (not {unknown or value})")
        if set(value) & SYMMETRIC_ALGORITHMS and set(value) & ASYMMETRIC_ALGORITHMS:
            # one key set cannot safely serve both (the HS/RS confusion attack)
            raise ValueError("pin either HMAC (HS*) or public-key algorithms, not both")
        return value

    @field_validator("tenant_header_name")
    @classmethod
    def _lower_header(cls, value: str) -> str:
        return value.strip().lower()

    @model_validator(mode="after")
    def _keys_for_algorithms(self) -> Settings:
        if self.uses_public_keys and not (self.jwt_public_key_file or self.jwks_file):
            raise ValueError(
                "public-key algorithms need GATEWAY_JWT_PUBLIC_KEY_FILE or GATEWAY_JWKS_FILE"
            )
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        # overrides the base check: the HS256 secret only matters when HMAC is pinned
        if self.environment == "prod":
            for name, value in self:
                if name == "jwt_secret" and self.uses_public_keys:
                    continue
                if isinstance(value, SecretStr) and value.get_secret_value() in PLACEHOLDER_SECRETS:
                    raise ValueError(f"{name} is a placeholder: set a real secret for prod")
        return self

    @property
    def uses_public_keys(self) -> bool:
        return not set(self.jwt_algorithms) & SYMMETRIC_ALGORITHMS

    def rate_for_plan(self, plan: str | None) -> float:
        return self.rate_limit_per_plan.get(plan or "", self.rate_limit_default)
