"""Settings: environment names, pinned algorithms, secrets outside dev."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.auth import UserTokens, user_token_verifier
from gateway.settings import Settings
from stellara_contracts.events import Role
from stellara_kit.auth import Principal, UserTokenSettings, mint_user_token


class TestEnvironment:
    def test_gateway_prefixed_variables_are_read(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GATEWAY_TENANT_SVC_URL", "http://tenant-svc:8101")
        monkeypatch.setenv("GATEWAY_JWT_ALGORITHMS", '["HS512"]')
        monkeypatch.setenv("GATEWAY_RATE_LIMIT_PER_PLAN", '{"pro": 900}')
        settings = Settings()
        assert settings.tenant_svc_url == "http://tenant-svc:8101"
        assert settings.jwt_algorithms == ["HS512"]
        assert settings.rate_for_plan("pro") == 900
        assert settings.rate_for_plan("unknown") == settings.rate_limit_default

    def test_tenant_resolution_settings_are_read_under_their_plain_names_too(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TENANT_HEADER_NAME", "X-Org")
        monkeypatch.setenv("TENANT_SUBDOMAIN_ENABLED", "true")
        monkeypatch.setenv("DEFAULT_TENANT_SLUG", "default-org")
        settings = Settings()
        assert settings.tenant_header_name == "x-org"
        assert settings.tenant_subdomain_enabled is True
        assert settings.default_tenant_slug == "default-org"

    def test_the_prefixed_name_wins_over_the_plain_one(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DEFAULT_TENANT_SLUG", "plain")
        monkeypatch.setenv("GATEWAY_DEFAULT_TENANT_SLUG", "prefixed")
        assert Settings().default_tenant_slug == "prefixed"

    def test_defaults(self) -> None:
        settings = Settings()
        assert settings.tenant_header_name == "x-tenant-id"
        assert settings.tenant_subdomain_enabled is False
        assert settings.default_tenant_slug == "main"
        assert settings.http_port == 8000
        assert settings.jwt_algorithms == ["HS256"]

    def test_every_setting_is_described(self) -> None:
        undocumented = [n for n, f in Settings.model_fields.items() if not f.description]
        assert undocumented == []


class TestAlgorithms:
    def test_none_is_not_an_algorithm(self) -> None:
        with pytest.raises(ValidationError):
            Settings(jwt_algorithms=["none"])

    def test_hmac_and_public_key_algorithms_cannot_be_mixed(self, tmp_path: Path) -> None:
        (tmp_path / "key.pem").write_text("unused")
        with pytest.raises(ValidationError, match="not both"):
            Settings(jwt_algorithms=["HS256", "RS256"], jwt_public_key_file=tmp_path / "key.pem")

    def test_public_key_algorithms_need_keys(self) -> None:
        with pytest.raises(ValidationError, match="JWKS"):
            Settings(jwt_algorithms=["RS256"])


class TestProduction:
    def test_the_dev_jwt_secret_is_refused_in_prod(self) -> None:
        with pytest.raises(ValidationError, match="jwt_secret"):
            Settings(environment="prod", internal_token_secret="a-real-internal-secret-0123456789")

    def test_with_public_keys_the_unused_hmac_secret_does_not_matter(self, tmp_path: Path) -> None:
        (tmp_path / "key.pem").write_text("unused")
        settings = Settings(
            environment="prod",
            internal_token_secret="a-real-internal-secret-0123456789",
            jwt_algorithms=["RS256"],
            jwt_public_key_file=tmp_path / "key.pem",
        )
        assert settings.uses_public_keys


class TestDevelopmentTokens:
    """The tools' minter (``stellara_kit.auth``) reads the same variables with the same defaults."""

    def test_the_minters_defaults_are_the_gateways(self) -> None:
        gateway, minter = Settings(), UserTokenSettings()
        assert minter.jwt_algorithms == gateway.jwt_algorithms
        assert minter.jwt_secret == gateway.jwt_secret
        assert (minter.jwt_audience, minter.jwt_issuer) == (
            gateway.jwt_audience,
            gateway.jwt_issuer,
        )

    def test_a_minted_token_is_accepted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GATEWAY_JWT_SECRET", "another-development-secret-0123456789")
        monkeypatch.setenv("GATEWAY_JWT_ISSUER", "my-issuer")
        principal = Principal(subject="ada", role=Role.PLATFORM_ADMIN)
        token = mint_user_token(UserTokenSettings(), principal)
        assert UserTokens(user_token_verifier(Settings())).verify(token) == principal
