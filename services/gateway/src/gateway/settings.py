"""gateway settings: environment variables prefixed ``GATEWAY_``."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from stellara_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    http_port: int = 8000
