"""usage-svc settings: environment variables prefixed ``USAGE_SVC_``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from stellara_kit.settings import ServiceSettings
from usage_svc.plans import BUILTIN_PLANS, Plan, load_plans_file


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="USAGE_SVC_", extra="ignore")

    service_name: str = Field(
        default="usage-svc", description="Name in logs, metrics and event sources."
    )
    http_port: int = Field(default=8102, ge=1, le=65535, description="Port the HTTP server binds.")

    # ---------------------------------------------------------------- ingestion
    dedup_window_days: int = Field(
        default=35,
        ge=1,
        le=400,
        description="Days an event id is remembered for exact deduplication; events whose "
        "`occurred_at` is older are dead-lettered (`too_old`) and raw-event partitions "
        "older than this are dropped.",
    )
    dedup_epoch_days: int = Field(
        default=7,
        ge=1,
        le=400,
        description="Span, in days, of one partition of the dedup ledger (keyed by receive "
        "day). Smaller spans free space sooner; larger ones mean fewer partitions probed "
        "per event (about window / span).",
    )
    future_skew_seconds: int = Field(
        default=300,
        ge=0,
        le=86_400,
        description="How far in the future `occurred_at` may be (clock skew) before the "
        "record is dead-lettered (`future_timestamp`).",
    )
    batch_max_records: int = Field(
        default=5000,
        ge=1,
        le=100_000,
        description="Records one Kafka fetch (`getmany`) hands to the ingester.",
    )
    batch_max_wait_ms: int = Field(
        default=50,
        ge=0,
        le=10_000,
        description="Longest wait for records when none are buffered (keeps freshness).",
    )
    batch_target_records: int = Field(
        default=20_000,
        ge=1,
        le=200_000,
        description="Records gathered from buffered fetches into one database transaction "
        "(more records per transaction fold more of them into each aggregate row).",
    )
    allow_unknown_metrics: bool = Field(
        default=False,
        description="Accept metrics missing from the meter catalogue (aggregated as SUM) "
        "instead of dead-lettering them (`unknown_metric`).",
    )
    unknown_tenant_grace_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="How long the ingester waits, the first time it sees a tenant it does "
        "not know, for `tenant.state` to catch up before dead-lettering (`unknown_tenant`).",
    )
    meter_refresh_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often the ingester reloads the meter catalogue (meters added on "
        "another replica).",
    )
    ingest_session_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        description="Kafka consumer group session timeout of the usage ingester.",
    )

    # ---------------------------------------------------------------- background jobs
    retention_interval_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="How often partitions are created ahead and those past the dedup "
        "window dropped.",
    )
    partitions_ahead_days: int = Field(
        default=2, ge=1, le=60, description="Days of raw-event partitions created ahead."
    )
    billing_close_interval_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How often finished billing periods are looked for and closed.",
    )
    billing_close_delay_hours: float = Field(
        default=6.0,
        ge=0,
        le=24 * 30,
        description="Hours after a period's end before it is closed (late events still count).",
    )
    billing_close_lookback_days: int = Field(
        default=62,
        ge=1,
        le=3660,
        description="Periods that ended more than this many days ago are never closed "
        "(a fresh deployment does not bill history).",
    )

    # ---------------------------------------------------------------- plans and quotas
    plans: dict[str, Plan] = Field(
        default_factory=lambda: dict(BUILTIN_PLANS),
        description="The plan catalogue, plan key → plan (JSON object): base fee, "
        "currency, billing period and per metric `included`, `unit_price`, `limit`, "
        "`limit_kind` (soft/hard).",
    )
    plans_file: Path | None = Field(
        default=None,
        description="JSON or YAML file of plans (plan key → plan) merged over `plans`: a "
        "plan in the file replaces the one with the same key.",
    )
    alert_thresholds_percent: list[int] = Field(
        default_factory=lambda: [80, 100],
        description="Percentages of a plan limit that raise an alert once per tenant, metric "
        "and period: below 100 `UsageThresholdReached`, 100 `QuotaExceeded`.",
    )

    # ---------------------------------------------------------------- queries
    query_max_days: int = Field(
        default=1100, ge=1, le=10_000, description="Longest range a usage query may cover."
    )

    @model_validator(mode="after")
    def _load_plans(self) -> Settings:
        if self.plans_file is not None:
            self.plans = {**self.plans, **load_plans_file(self.plans_file)}
        for key, plan in self.plans.items():
            if plan.key != key:
                raise ValueError(f"plan under key {key!r} names itself {plan.key!r}")
        if any(not 1 <= t <= 100 for t in self.alert_thresholds_percent):
            raise ValueError("alert_thresholds_percent must be between 1 and 100")
        self.alert_thresholds_percent = sorted(set(self.alert_thresholds_percent))
        return self

    @property
    def ingest_group_id(self) -> str:
        """The ingester's consumer group: its own, so replicas of the tenant.events subscriber
        joining or leaving never pause ingestion (and the other way round)."""
        return f"{self.group_id}-ingest"
