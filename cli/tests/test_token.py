"""`stellara token` mints development tokens the gateway accepts."""

from __future__ import annotations

from uuid import uuid4

import pytest
from typer.testing import CliRunner

from gateway.auth import UserTokens, user_token_verifier
from gateway.settings import Settings
from stellara_cli.token import app

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


class TestTokenCommand:
    def test_prints_only_a_token_the_gateway_accepts(self) -> None:
        tenant = uuid4()
        result = CliRunner().invoke(
            app, ["--role", "tenant_admin", "--tenant", str(tenant), "--email", "ada@acme.example"]
        )
        assert result.exit_code == 0, result.output
        token = result.stdout.strip()
        assert "\n" not in token and token.count(".") == 2
        principal = UserTokens(user_token_verifier(Settings())).verify(token)
        assert principal.role == "tenant_admin"
        assert principal.tenant_id == tenant
        assert principal.email == "ada@acme.example"

    def test_uses_the_gateways_settings(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GATEWAY_JWT_SECRET", "another-development-secret-0123456789")
        monkeypatch.setenv("GATEWAY_JWT_AUDIENCE", "my-api")
        result = CliRunner().invoke(app, ["--role", "platform_admin", "--subject", "ops"])
        assert result.exit_code == 0, result.output
        principal = UserTokens(user_token_verifier(Settings())).verify(result.stdout.strip())
        assert principal.subject == "ops" and principal.tenant_id is None

    def test_a_tenant_that_is_not_an_id_is_refused_with_advice(self) -> None:
        result = CliRunner().invoke(app, ["--tenant", "acme"])
        assert result.exit_code == 2
        assert "UUID" in result.output
