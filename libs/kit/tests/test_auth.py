"""JWT verification with pinned algorithms, and principals' tenant checks."""

from __future__ import annotations

import time
from uuid import uuid4

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from stellara_contracts.events import Role
from stellara_kit.auth import (
    Principal,
    TokenVerifier,
    UserTokenSettings,
    mint_token,
    mint_user_token,
)
from stellara_kit.problems import Forbidden, NotFound, Unauthorized

SECRET = "test-secret-with-enough-length-for-hs256"
AUD, ISS = "stellara", "https://issuer.test"


def verifier(**overrides: object) -> TokenVerifier:
    options: dict = {"algorithms": ["HS256"], "keys": SECRET, "audience": AUD, "issuer": ISS}
    options.update(overrides)
    return TokenVerifier(**options)


def claims(**overrides: object) -> dict:
    now = int(time.time())
    base = {
        "sub": "u1",
        "role": "tenant_admin",
        "tenant_id": str(uuid4()),
        "aud": AUD,
        "iss": ISS,
        "exp": now + 60,
        "iat": now,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


class TestTokenVerifier:
    def test_valid_token_gives_principal(self) -> None:
        c = claims()
        principal = verifier().verify(jwt.encode(c, SECRET, algorithm="HS256"))
        assert principal.subject == "u1"
        assert principal.role == Role.TENANT_ADMIN
        assert str(principal.tenant_id) == c["tenant_id"]

    @pytest.mark.parametrize(
        "token_claims",
        [
            claims(exp=int(time.time()) - 10),
            claims(nbf=int(time.time()) + 600),
            claims(aud="someone-else"),
            claims(iss="https://evil.test"),
            claims(exp=None),
            claims(aud=None),
        ],
        ids=["expired", "not-yet-valid", "wrong-audience", "wrong-issuer", "no-exp", "no-aud"],
    )
    def test_bad_claims_are_refused(self, token_claims: dict) -> None:
        with pytest.raises(Unauthorized):
            verifier().verify(jwt.encode(token_claims, SECRET, algorithm="HS256"))

    def test_alg_none_is_refused(self) -> None:
        token = jwt.encode(claims(), None, algorithm="none")  # type: ignore[arg-type]
        with pytest.raises(Unauthorized):
            verifier().verify(token)

    def test_tampered_signature_is_refused(self) -> None:
        token = jwt.encode(claims(), SECRET, algorithm="HS256")
        head, body, sig = token.split(".")
        with pytest.raises(Unauthorized):
            verifier().verify(f"{head}.{body}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}")

    def test_hs_rs_confusion_is_refused(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        rs_verifier = verifier(algorithms=["RS256"], keys=public_pem)
        # an attacker signs with HS256 using the public key as the secret
        forged = jwt.api_jws.PyJWS().encode(
            jwt.utils.force_bytes(__import__("json").dumps(claims())),
            key="x" * 32,
            algorithm="HS256",
        )
        with pytest.raises(Unauthorized):
            rs_verifier.verify(forged)
        assert rs_verifier.verify(jwt.encode(claims(), key, algorithm="RS256")).subject == "u1"

    def test_none_cannot_be_pinned(self) -> None:
        with pytest.raises(ValueError):
            verifier(algorithms=["none"])

    @pytest.mark.parametrize("sub", ["", "   ", 42], ids=["empty", "blank", "not-a-string"])
    @pytest.mark.parametrize("via", ["jwt", "internal"])
    def test_a_token_naming_nobody_is_refused(self, sub: object, via: str) -> None:
        token = jwt.encode(claims(sub=sub), SECRET, algorithm="HS256")
        with pytest.raises(Unauthorized) as refused:
            verifier(via=via).verify(token)
        assert refused.value.status == 401
        assert "sub" in str(refused.value.detail).lower()

    @pytest.mark.parametrize(
        ("claim", "expected"),
        [
            (True, True),
            (False, False),
            ("true", True),
            ("false", False),
            ("yes", False),
            (None, None),
        ],
    )
    def test_email_verified_is_read_as_a_bool(self, claim: object, expected: bool | None) -> None:
        token = jwt.encode(
            claims(email="ada@acme.example", email_verified=claim), SECRET, algorithm="HS256"
        )
        principal = verifier().verify(token)
        assert (principal.email, principal.email_verified) == ("ada@acme.example", expected)

    def test_email_verified_travels_in_internal_tokens(self) -> None:
        principal = Principal(
            subject="ada", role=Role.USER, email="ada@acme.example", email_verified=False
        )
        token = mint_token(principal, key=SECRET, audience=AUD, issuer=ISS)
        assert verifier().verify(token).email_verified is False

    def test_minted_token_round_trips(self) -> None:
        principal = Principal(
            subject="svc", role=Role.USER, tenant_id=uuid4(), scopes=frozenset({"usage:write"})
        )
        token = mint_token(principal, key=SECRET, audience=AUD, issuer=ISS)
        assert verifier().verify(token) == principal


class TestUserTokens:
    """Development user tokens, signed as the gateway's ``GATEWAY_JWT_*`` settings say."""

    def test_the_gateways_variables_are_read(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GATEWAY_JWT_SECRET", SECRET)
        monkeypatch.setenv("GATEWAY_JWT_AUDIENCE", AUD)
        monkeypatch.setenv("GATEWAY_JWT_ISSUER", ISS)
        monkeypatch.setenv("GATEWAY_JWT_ALGORITHMS", '["HS512"]')
        principal = Principal(subject="ada", role=Role.TENANT_ADMIN, tenant_id=uuid4())
        token = mint_user_token(UserTokenSettings(), principal, ttl_seconds=120)
        assert jwt.get_unverified_header(token)["alg"] == "HS512"
        assert verifier(algorithms=["HS512"]).verify(token) == principal

    def test_the_ttl_sets_exp(self) -> None:
        token = mint_user_token(
            UserTokenSettings(), Principal(subject="ada", role=Role.USER), ttl_seconds=90, now=1000
        )
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] == 1090 and claims["aud"] == "stellara-api"

    def test_public_key_algorithms_cannot_be_minted_for(self) -> None:
        settings = UserTokenSettings(jwt_algorithms=["RS256"])
        with pytest.raises(ValueError, match="identity provider"):
            mint_user_token(settings, Principal(subject="ada", role=Role.USER))


class TestPrincipal:
    def test_other_tenant_looks_like_not_found(self) -> None:
        p = Principal(subject="u", role=Role.TENANT_ADMIN, tenant_id=uuid4())
        with pytest.raises(NotFound):
            p.require_read(uuid4())

    def test_user_cannot_administer_own_tenant(self) -> None:
        tenant = uuid4()
        p = Principal(subject="u", role=Role.USER, tenant_id=tenant)
        p.require_read(tenant)
        with pytest.raises(Forbidden):
            p.require_admin(tenant)

    def test_platform_admin_reaches_every_tenant(self) -> None:
        p = Principal(subject="ops", role=Role.PLATFORM_ADMIN)
        p.require_admin(uuid4())


class TestOneCodePerRefusal:
    """Every service raises these through the kit, the gateway through the same classes."""

    def test_a_missing_role_is_role_required(self) -> None:
        tenant = uuid4()
        user = Principal(subject="u", role=Role.USER, tenant_id=tenant)
        for refuse in (lambda: user.require_admin(tenant), user.require_platform_admin):
            with pytest.raises(Forbidden) as refused:
                refuse()
            assert refused.value.body()["type"] == "urn:stellara:problem:role-required"

    def test_another_tenant_is_tenant_not_found(self) -> None:
        p = Principal(subject="u", role=Role.TENANT_ADMIN, tenant_id=uuid4())
        with pytest.raises(NotFound) as refused:
            p.require_read(uuid4())
        assert refused.value.body()["type"] == "urn:stellara:problem:tenant-not-found"
