"""usage-svc settings: environment variables prefixed ``USAGE_SVC_``."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from stellara_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="USAGE_SVC_", extra="ignore")

    service_name: str = "usage-svc"
    http_port: int = 8102
