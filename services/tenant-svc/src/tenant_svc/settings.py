"""tenant-svc settings: environment variables prefixed ``TENANT_SVC_``."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from stellara_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TENANT_SVC_", extra="ignore")

    service_name: str = "tenant-svc"
    http_port: int = 8101
