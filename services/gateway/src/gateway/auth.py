"""Who is calling: user JWTs, tenant API keys, and the internal tokens sent downstream.

- User tokens are JWTs verified with algorithms pinned by configuration
  (HS256 with a shared secret in development, RS*/ES* with public keys from
  a PEM file or a JWKS file); `exp`, `aud`, `iss` and a non-empty `sub` are required.
  A verified token is remembered until it expires, so a busy client costs
  one signature check, not one a request.
- API keys (`Authorization: ApiKey …` or `X-API-Key`) are verified by
  tenant-svc and remembered for ``api_key_cache_seconds``: a revoked key
  stops working within that time. Every refusal — unknown, revoked,
  expired, another tenant's — is the same 401.
- Downstream services never see the caller's credential: each request
  carries a short-lived internal token with the same subject, role, tenant,
  scopes and email (``stellara_kit.auth.mint_internal_token``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Hashable, Mapping
from typing import Any, Generic, TypeVar
from uuid import UUID

import httpx
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Request

from gateway.settings import Settings
from stellara_contracts.events import Role
from stellara_kit.auth import Principal, TokenVerifier, mint_internal_token
from stellara_kit.problems import Problem, Unauthorized

log = logging.getLogger(__name__)

API_KEY_REFUSED = "The API key is not valid (unknown, revoked, expired or not for this tenant)."
VERIFY_PATH = "/internal/api-keys/verify"
GATEWAY_PRINCIPAL = Principal(subject="gateway", role=Role.PLATFORM_ADMIN, via="internal")


def api_key_refused() -> Unauthorized:
    return Unauthorized(API_KEY_REFUSED, headers={"WWW-Authenticate": "ApiKey"})


def user_token_verifier(settings: Settings) -> TokenVerifier:
    """A verifier for user tokens with the algorithms and keys of the settings."""
    keys: Mapping[str, Any] | Any
    if not settings.uses_public_keys:
        keys = settings.jwt_secret.get_secret_value()
    elif settings.jwks_file is not None:
        keys = load_jwks(settings.jwks_file.read_text(), settings.jwt_algorithms)
    else:
        assert settings.jwt_public_key_file is not None
        keys = load_pem_public_key(settings.jwt_public_key_file.read_bytes())
    return TokenVerifier(
        algorithms=settings.jwt_algorithms,
        keys=keys,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        leeway_seconds=settings.jwt_leeway_seconds,
    )


def load_jwks(text: str, algorithms: list[str]) -> dict[str, Any]:
    """``{kid: public key}`` of a JWKS document (keys for other algorithms are skipped)."""
    document = json.loads(text)
    keys: dict[str, Any] = {}
    for index, jwk in enumerate(document.get("keys", [])):
        if jwk.get("alg") and jwk["alg"] not in algorithms:
            continue
        if jwk.get("kty") == "oct":
            raise ValueError("a JWKS of public keys must not hold shared secrets (kty=oct)")
        key = jwt.PyJWK.from_dict(jwk)
        keys[jwk.get("kid") or f"key-{index}"] = key.key
    if not keys:
        raise ValueError("the JWKS file holds no key for the pinned algorithms")
    return keys


V = TypeVar("V")


class _ExpiringCache(Generic[V]):
    """A bounded map whose entries expire (the oldest go first when it is full)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: dict[Hashable, tuple[V, float]] = {}

    def get(self, key: Hashable, now: float) -> tuple[bool, V | None]:
        item = self._items.get(key)
        if item is None:
            return False, None
        if item[1] <= now:
            del self._items[key]
            return False, None
        return True, item[0]

    def put(self, key: Hashable, value: V, expires_at: float) -> None:
        if len(self._items) >= self.size:
            for old in list(self._items)[: max(1, self.size // 10)]:
                del self._items[old]
        self._items[key] = (value, expires_at)


class UserTokens:
    """Verifies user JWTs; a verified token is remembered until its `exp`."""

    def __init__(self, verifier: TokenVerifier, *, cache_size: int = 10_000) -> None:
        self.verifier = verifier
        self._cache: _ExpiringCache[Principal] = _ExpiringCache(cache_size)

    def verify(self, token: str) -> Principal:
        now = time.time()
        hit, principal = self._cache.get(token, now)
        if hit and principal is not None:
            return principal
        principal = self.verifier.verify(token)
        expires = jwt.decode(token, options={"verify_signature": False}).get("exp")
        if isinstance(expires, int | float):
            self._cache.put(token, principal, float(expires))
        return principal


class ApiKeys:
    """Verifies tenant API keys against tenant-svc, remembering answers for a few seconds."""

    def __init__(
        self, settings: Settings, client: httpx.AsyncClient, tokens: InternalTokens
    ) -> None:
        self.ttl = settings.api_key_cache_seconds
        self.client = client
        self.tokens = tokens
        self._cache: _ExpiringCache[Principal | None] = _ExpiringCache(settings.api_key_cache_size)
        self._inflight: dict[str, asyncio.Future[Principal | None]] = {}

    async def verify(self, key: str) -> Principal:
        if not key or len(key) > 512:
            raise api_key_refused()
        # only a digest of the key is kept in memory
        digest = hashlib.sha256(key.encode()).hexdigest()
        hit, principal = self._cache.get(digest, time.monotonic())
        if not hit:
            principal = await self._lookup_once(digest, key)
        if principal is None:
            raise api_key_refused()
        return principal

    async def _lookup_once(self, digest: str, key: str) -> Principal | None:
        """One call to tenant-svc per key at a time, shared by concurrent requests."""
        pending = self._inflight.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            principal = await self._lookup(key)
            self._cache.put(digest, principal, time.monotonic() + self.ttl)
            future.set_result(principal)
            return principal
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            del self._inflight[digest]

    async def _lookup(self, key: str) -> Principal | None:
        headers = {"authorization": f"Bearer {self.tokens.token_for(GATEWAY_PRINCIPAL)}"}
        try:
            response = await self.client.post(VERIFY_PATH, json={"key": key}, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("API key verification failed: %s", exc)
            raise Problem(
                "API keys cannot be verified right now; retry in a moment.",
                status=503,
                slug="service-unavailable",
                title="Service unavailable",
                headers={"Retry-After": "1"},
                service="tenant-svc",
            ) from exc
        if response.status_code in (401, 403, 404):
            return None
        if response.status_code != 200:
            log.warning("API key verification answered %s", response.status_code)
            raise Problem(
                "API keys cannot be verified right now; retry in a moment.",
                status=503,
                slug="service-unavailable",
                title="Service unavailable",
                headers={"Retry-After": "1"},
                service="tenant-svc",
            )
        body = response.json()
        if body.get("valid") is False or not body.get("tenant_id"):
            return None
        return Principal(
            subject=f"api-key:{body['key_id']}",
            role=Role.USER,
            tenant_id=UUID(str(body["tenant_id"])),
            scopes=frozenset(body.get("scopes") or ()),
            via="api_key",
        )


class InternalTokens:
    """Short-lived internal tokens, reused while more than half their life is left."""

    def __init__(self, settings: Settings, *, cache_size: int = 10_000) -> None:
        self.settings = settings
        self.ttl = settings.internal_token_ttl_seconds
        self._cache: _ExpiringCache[str] = _ExpiringCache(cache_size)

    def token_for(self, principal: Principal) -> str:
        key = principal
        now = time.time()
        hit, token = self._cache.get(key, now)
        if hit and token is not None:
            return token
        token = mint_internal_token(self.settings, principal, ttl_seconds=self.ttl)
        self._cache.put(key, token, now + self.ttl / 2)
        return token


class Authenticator:
    """The caller of a request, from `Authorization: Bearer|ApiKey …` or `X-API-Key`."""

    def __init__(self, user_tokens: UserTokens, api_keys: ApiKeys) -> None:
        self.user_tokens = user_tokens
        self.api_keys = api_keys

    async def authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if header:
            scheme, _, credential = header.partition(" ")
            scheme = scheme.lower()
            if scheme == "bearer" and credential.strip():
                return self.user_tokens.verify(credential.strip())
            if scheme == "apikey":
                return await self.api_keys.verify(credential.strip())
            raise Unauthorized(
                "Send `Authorization: Bearer <token>`, `Authorization: ApiKey <key>` or `X-API-Key`."
            )
        api_key = request.headers.get("x-api-key")
        if api_key is not None:
            return await self.api_keys.verify(api_key.strip())
        raise Unauthorized(
            "Sign in: send `Authorization: Bearer <token>`, or an API key as "
            "`Authorization: ApiKey <key>` or `X-API-Key`."
        )
