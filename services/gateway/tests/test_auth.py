"""Authentication: user tokens (and attacks on them), API keys, identity sent downstream."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.settings import Settings
from stellara_kit.testing import Infrastructure, wait_for

from .conftest import (
    StandIns,
    Tenants,
    api_key_for,
    gateway_client,
    gateway_settings,
    user_headers,
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    """A JWT assembled by hand (the way an attacker would)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{_b64(signature)}"


def claims(settings: Settings, tenants: Tenants, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "mallory",
        "role": "tenant_admin",
        "tenant_id": str(tenants.acme.tenant_id),
        "aud": settings.jwt_audience,
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + 300,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def hs256(settings: Settings, payload: dict[str, Any]) -> str:
    return jwt.encode(payload, settings.jwt_secret.get_secret_value(), algorithm="HS256")


async def get_tenant(client: httpx.AsyncClient, tenants: Tenants, token: str) -> httpx.Response:
    return await client.get(
        f"/tenants/{tenants.acme.tenant_id}", headers={"authorization": f"Bearer {token}"}
    )


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_of(private_key: Any) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class TestUserTokens:
    async def test_a_valid_token_reaches_the_service(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        response = await get_tenant(client, tenants, hs256(settings, claims(settings, tenants)))
        assert response.status_code == 200, response.text

    @pytest.mark.parametrize(
        ("case", "changes"),
        [
            ("expired", {"exp": int(time.time()) - 3600}),
            ("not yet valid", {"nbf": int(time.time()) + 3600}),
            ("wrong audience", {"aud": "someone-else"}),
            ("wrong issuer", {"iss": "https://evil.example"}),
            ("missing exp", {"exp": None}),
            ("missing aud", {"aud": None}),
            ("missing iss", {"iss": None}),
            ("unknown role", {"role": "superuser"}),
            ("missing sub", {"sub": None}),
            ("empty sub", {"sub": ""}),
            ("blank sub", {"sub": "  "}),
        ],
    )
    async def test_invalid_claims_are_401(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        tenants: Tenants,
        downstream: StandIns,
        case: str,
        changes: dict[str, Any],
    ) -> None:
        response = await get_tenant(
            client, tenants, hs256(settings, claims(settings, tenants, **changes))
        )
        assert response.status_code == 401, case
        assert response.headers["content-type"].startswith("application/problem+json")
        assert downstream.received() == []

    async def test_alg_none_is_401(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        token = raw_token(
            {"alg": "none", "typ": "JWT"}, claims(settings, tenants, role="platform_admin")
        )
        response = await get_tenant(client, tenants, token)
        assert response.status_code == 401
        assert downstream.received() == []

    async def test_a_tampered_payload_is_401(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        genuine = hs256(settings, claims(settings, tenants, role="user"))
        header, _, signature = genuine.split(".")
        forged_claims = _b64(json.dumps(claims(settings, tenants, role="platform_admin")).encode())
        response = await get_tenant(client, tenants, f"{header}.{forged_claims}.{signature}")
        assert response.status_code == 401
        assert downstream.received() == []

    async def test_a_tampered_signature_is_401(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        genuine = hs256(settings, claims(settings, tenants))
        flipped = genuine[:-2] + ("A" if genuine[-2] != "A" else "B") + genuine[-1]
        assert (await get_tenant(client, tenants, flipped)).status_code == 401

    async def test_a_token_signed_with_another_secret_is_401(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        token = jwt.encode(
            claims(settings, tenants), "another-secret-of-32-bytes-or-more!", algorithm="HS256"
        )
        assert (await get_tenant(client, tenants, token)).status_code == 401

    async def test_an_rs256_token_is_401_when_hs256_is_pinned(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        token = jwt.encode(claims(settings, tenants), rsa_key(), algorithm="RS256")
        assert (await get_tenant(client, tenants, token)).status_code == 401

    async def test_the_internal_token_of_the_services_is_not_accepted_from_outside(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        from stellara_kit.testing import auth_headers

        headers = auth_headers(settings, role="platform_admin")
        response = await client.get(f"/tenants/{tenants.acme.tenant_id}", headers=headers)
        assert response.status_code == 401

    async def test_other_authorization_schemes_are_401(
        self, client: httpx.AsyncClient, tenants: Tenants
    ) -> None:
        response = await client.get(
            f"/tenants/{tenants.acme.tenant_id}", headers={"authorization": "Basic YTpi"}
        )
        assert response.status_code == 401


class TestPublicKeyTokens:
    async def test_rs256_tokens_verify_with_a_pem_public_key(
        self,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        downstream: StandIns,
        tenants: Tenants,
        tmp_path: Path,
    ) -> None:
        private = rsa_key()
        (tmp_path / "public.pem").write_bytes(pem_of(private))
        rs = gateway_settings(
            infrastructure,
            topic_prefix,
            downstream,
            jwt_algorithms=["RS256"],
            jwt_public_key_file=tmp_path / "public.pem",
        )
        async with gateway_client(rs) as client:
            good = jwt.encode(claims(rs, tenants), private, algorithm="RS256")
            assert (await get_tenant(client, tenants, good)).status_code == 200

            # HS/RS confusion: an HS256 token "signed" with the public key as the secret
            pem = pem_of(private)
            forged = raw_token(
                {"alg": "HS256", "typ": "JWT"},
                claims(rs, tenants, role="platform_admin"),
                lambda data: hmac.new(pem, data, hashlib.sha256).digest(),
            )
            assert (await get_tenant(client, tenants, forged)).status_code == 401
            # and one signed with the dev secret
            assert (
                await get_tenant(client, tenants, hs256(rs, claims(rs, tenants)))
            ).status_code == 401
            # a token signed by another RSA key
            stranger = jwt.encode(claims(rs, tenants), rsa_key(), algorithm="RS256")
            assert (await get_tenant(client, tenants, stranger)).status_code == 401

    async def test_es256_tokens_verify_with_a_jwks_chosen_by_kid(
        self,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        downstream: StandIns,
        tenants: Tenants,
        tmp_path: Path,
    ) -> None:
        current, retired = (
            ec.generate_private_key(ec.SECP256R1()),
            ec.generate_private_key(ec.SECP256R1()),
        )
        jwks = {"keys": []}
        for kid, key in (("2026-12", current), ("2026-06", retired)):
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            jwks["keys"].append(jwk | {"kid": kid, "alg": "ES256", "use": "sig"})
        (tmp_path / "jwks.json").write_text(json.dumps(jwks))
        es = gateway_settings(
            infrastructure,
            topic_prefix,
            downstream,
            jwt_algorithms=["ES256"],
            jwks_file=tmp_path / "jwks.json",
        )
        async with gateway_client(es) as client:
            for kid, key in (("2026-12", current), ("2026-06", retired)):
                token = jwt.encode(
                    claims(es, tenants), key, algorithm="ES256", headers={"kid": kid}
                )
                assert (await get_tenant(client, tenants, token)).status_code == 200
            wrong_kid = jwt.encode(
                claims(es, tenants), current, algorithm="ES256", headers={"kid": "2026-06"}
            )
            assert (await get_tenant(client, tenants, wrong_kid)).status_code == 401
            unknown_kid = jwt.encode(
                claims(es, tenants), current, algorithm="ES256", headers={"kid": "nope"}
            )
            assert (await get_tenant(client, tenants, unknown_kid)).status_code == 401


class TestApiKeys:
    async def test_a_valid_key_acts_as_a_user_of_its_tenant_with_its_scopes(
        self, client: httpx.AsyncClient, tenants: Tenants, downstream: StandIns
    ) -> None:
        key = api_key_for(downstream, tenants.acme.tenant_id, ["tenant:read"])
        response = await client.get(f"/tenants/{tenants.acme.slug}", headers={"x-api-key": key})
        assert response.status_code == 200, response.text
        [call] = downstream.tenant.calls("/tenants")
        assert call.identity is not None
        assert call.identity["role"] == "user"
        assert call.identity["tenant_id"] == str(tenants.acme.tenant_id)
        assert call.identity["scopes"] == ["tenant:read"]
        assert call.identity["via"] == "api_key"
        assert call.identity["subject"].startswith("api-key:")
        assert key not in json.dumps(call.headers)

    async def test_the_authorization_apikey_scheme_works_too(
        self, client: httpx.AsyncClient, tenants: Tenants, downstream: StandIns
    ) -> None:
        key = api_key_for(downstream, tenants.acme.tenant_id, ["tenant:read"])
        response = await client.get(
            f"/tenants/{tenants.acme.tenant_id}", headers={"authorization": f"ApiKey {key}"}
        )
        assert response.status_code == 200

    async def test_unknown_revoked_expired_and_other_tenants_keys_get_the_same_401(
        self, client: httpx.AsyncClient, tenants: Tenants, downstream: StandIns
    ) -> None:
        revoked = api_key_for(downstream, tenants.acme.tenant_id, ["tenant:read"])
        downstream.tenant.api_keys[revoked]["revoked"] = True
        expired = api_key_for(downstream, tenants.acme.tenant_id, ["tenant:read"])
        downstream.tenant.api_keys[expired]["expired"] = True
        globex_key = api_key_for(downstream, tenants.globex.tenant_id, ["tenant:read"])
        answers = []
        for key in ("sk_unknown", revoked, expired, globex_key):
            response = await client.get(
                f"/tenants/{tenants.acme.tenant_id}", headers={"x-api-key": key}
            )
            assert response.status_code == 401
            answers.append({k: v for k, v in response.json().items() if k != "instance"})
        assert all(a == answers[0] for a in answers)
        assert downstream.received() == []

    async def test_a_key_naming_another_tenant_in_the_header_gets_the_same_401(
        self, client: httpx.AsyncClient, tenants: Tenants, downstream: StandIns
    ) -> None:
        key = api_key_for(downstream, tenants.acme.tenant_id, ["tenant:read"])
        response = await client.get(
            "/plans", headers={"x-api-key": key, "x-tenant-id": tenants.globex.slug}
        )
        assert response.status_code == 401

    async def test_a_revoked_key_stops_working_within_the_cache_time(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        key = api_key_for(downstream, tenants.acme.tenant_id, ["tenant:read"])
        path = f"/tenants/{tenants.acme.tenant_id}"
        assert (await client.get(path, headers={"x-api-key": key})).status_code == 200
        downstream.tenant.api_keys[key]["revoked"] = True
        revoked_at = time.monotonic()
        await wait_for(
            lambda: client.get(path, headers={"x-api-key": key}),
            until=lambda r: r.status_code == 401,
            timeout=5,
            interval=0.05,
        )
        assert time.monotonic() - revoked_at <= settings.api_key_cache_seconds + 0.5

    async def test_a_key_is_verified_once_for_many_requests(
        self, client: httpx.AsyncClient, tenants: Tenants, downstream: StandIns
    ) -> None:
        key = api_key_for(downstream, tenants.acme.tenant_id, ["tenant:read"])
        for _ in range(5):
            response = await client.get(
                f"/tenants/{tenants.acme.tenant_id}", headers={"x-api-key": key}
            )
            assert response.status_code == 200
        verifications = downstream.tenant.calls("/internal/api-keys/verify")
        assert len(verifications) == 1
        assert verifications[0].identity is not None
        assert verifications[0].identity["subject"] == "gateway"
        assert verifications[0].identity["role"] == "platform_admin"

    async def test_a_key_without_the_routes_scope_is_403(
        self, client: httpx.AsyncClient, tenants: Tenants, downstream: StandIns
    ) -> None:
        key = api_key_for(downstream, tenants.acme.tenant_id, ["usage:write"])
        response = await client.get(
            f"/tenants/{tenants.acme.tenant_id}", headers={"x-api-key": key}
        )
        assert response.status_code == 403
        assert "tenant:read" in response.json()["detail"]
        assert downstream.received() == []

    async def test_keys_cannot_be_verified_while_tenant_svc_is_down(
        self,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        downstream: StandIns,
        tenants: Tenants,
    ) -> None:
        from .conftest import free_port

        down = gateway_settings(
            infrastructure,
            topic_prefix,
            downstream,
            tenant_svc_url=f"http://127.0.0.1:{free_port()}",
        )
        async with gateway_client(down) as client:
            response = await client.get("/plans", headers={"x-api-key": "sk_anything"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"


class TestIdentityDownstream:
    async def test_the_service_gets_an_internal_token_not_the_callers_credential(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        headers = user_headers(
            settings,
            "tenant_admin",
            tenants.acme.tenant_id,
            subject="ada",
            email="ada@acme.example",
        )
        response = await client.get(f"/tenants/{tenants.acme.tenant_id}/config", headers=headers)
        assert response.status_code == 200
        [call] = downstream.tenant.calls("/tenants")
        assert call.headers["authorization"] != headers["authorization"]
        assert call.identity == {
            "subject": "ada",
            "role": "tenant_admin",
            "tenant_id": str(tenants.acme.tenant_id),
            "scopes": [],
            "via": "jwt",
            "email": "ada@acme.example",
            "email_verified": None,
        }
        internal = jwt.decode(
            call.headers["authorization"][7:], options={"verify_signature": False}
        )
        assert internal["aud"] == "stellara-internal"
        assert internal["exp"] - internal["iat"] <= settings.internal_token_ttl_seconds

    async def test_an_unverified_email_is_said_so_downstream(
        self, client: httpx.AsyncClient, settings: Settings, downstream: StandIns
    ) -> None:
        token = hs256(
            settings,
            {
                "sub": "eve",
                "role": "user",
                "email": "ada@acme.example",
                "email_verified": False,
                "aud": settings.jwt_audience,
                "iss": settings.jwt_issuer,
                "exp": int(time.time()) + 300,
            },
        )
        response = await client.post(
            f"/invitations/{'t' * 43}/accept", headers={"authorization": f"Bearer {token}"}
        )
        assert response.status_code == 201  # the onboarding stand-in answers anything
        [call] = downstream.onboarding.calls("/invitations/")
        assert call.identity is not None
        assert (call.identity["email"], call.identity["email_verified"]) == (
            "ada@acme.example",
            False,
        )

    async def test_request_id_and_trace_context_travel_along(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        headers = user_headers(settings, "user", tenants.acme.tenant_id) | {
            "x-request-id": "req-123",
            "traceparent": f"00-{trace}-00f067aa0ba902b7-01",
            "idempotency-key": "idem-1",
            "cookie": "session=secret",
        }
        response = await client.get(f"/tenants/{tenants.acme.tenant_id}/usage", headers=headers)
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "req-123"
        [call] = downstream.usage.calls("/tenants")
        assert call.headers["x-request-id"] == "req-123"
        assert call.headers["traceparent"].startswith(f"00-{trace}-")
        assert call.headers["traceparent"] != headers["traceparent"]  # the gateway's own span
        assert call.headers["idempotency-key"] == "idem-1"
        assert "cookie" not in call.headers

    async def test_a_trace_is_started_when_the_caller_sent_none(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        headers = user_headers(settings, "user", tenants.acme.tenant_id)
        await client.get(f"/tenants/{tenants.acme.tenant_id}", headers=headers)
        [call] = downstream.tenant.calls("/tenants")
        assert len(call.headers["traceparent"].split("-")) == 4
        assert call.headers["x-request-id"]


async def test_refusals_on_the_accept_route_never_echo_the_token(
    client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
) -> None:
    token = "inv_" + "s3cr3t" * 7
    key = api_key_for(downstream, tenants.acme.tenant_id, ["tenant:read"])
    answers = [
        await client.post(f"/invitations/{token}/accept"),  # 401: not signed in
        await client.post(f"/invitations/{token}/accept", headers={"x-api-key": key}),  # 403
        await client.get(  # 405
            f"/invitations/{token}/accept", headers=user_headers(settings, "user")
        ),
    ]
    assert [a.status_code for a in answers] == [401, 403, 405]
    for answer in answers:
        assert answer.json()["instance"] == "/invitations/{token}/accept"
        assert token not in answer.text + str(answer.headers)
