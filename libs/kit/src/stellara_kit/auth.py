"""Identity: principals, JWT verification with pinned algorithms, internal tokens.

How identity travels: the gateway authenticates the caller (a user's JWT or a
tenant API key) and forwards each request with a short-lived *internal*
token (HS256, audience ``stellara-internal``, a minute of life) that carries
the same subject, role, tenant and scopes. Every service verifies that token
itself and authorizes every object a request names — the gateway is not the
only line of defence.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Protocol
from uuid import UUID

import jwt
from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from stellara_contracts.events import Role
from stellara_kit.problems import RoleRequired, TenantNotFound, Unauthorized

REQUIRED_CLAIMS = ("exp", "aud", "iss", "sub")


class Principal(BaseModel):
    """Who is calling, with which role, for which tenant."""

    model_config = ConfigDict(frozen=True)

    subject: str
    role: Role
    tenant_id: UUID | None = None
    scopes: frozenset[str] = Field(default_factory=frozenset)
    via: Literal["jwt", "api_key", "internal"] = "jwt"
    email: str | None = None
    email_verified: bool | None = None
    """The token's ``email_verified`` claim (OpenID Connect); None when it has none."""

    @property
    def is_platform_admin(self) -> bool:
        return self.role == Role.PLATFORM_ADMIN

    def can_read(self, tenant_id: UUID) -> bool:
        return self.is_platform_admin or self.tenant_id == tenant_id

    def can_admin(self, tenant_id: UUID) -> bool:
        return self.is_platform_admin or (
            self.tenant_id == tenant_id and self.role == Role.TENANT_ADMIN
        )

    def require_read(self, tenant_id: UUID) -> None:
        """Refuse another tenant's object as if it did not exist (no existence leak)."""
        if not self.can_read(tenant_id):
            raise TenantNotFound("No such tenant.")

    def require_admin(self, tenant_id: UUID) -> None:
        self.require_read(tenant_id)
        if not self.can_admin(tenant_id):
            raise RoleRequired("This needs the tenant_admin role for this tenant.")

    def require_platform_admin(self) -> None:
        if not self.is_platform_admin:
            raise RoleRequired("This needs the platform_admin role.")

    def claims(self) -> dict[str, Any]:
        claims: dict[str, Any] = {"sub": self.subject, "role": str(self.role), "via": self.via}
        if self.tenant_id:
            claims["tenant_id"] = str(self.tenant_id)
        if self.scopes:
            claims["scope"] = " ".join(sorted(self.scopes))
        if self.email:
            claims["email"] = self.email
        if self.email_verified is not None:
            claims["email_verified"] = self.email_verified
        return claims


class TokenVerifier:
    """Verifies JWTs with algorithms pinned by configuration, never taken from the token."""

    def __init__(
        self,
        *,
        algorithms: Iterable[str],
        keys: Mapping[str, Any] | Any,
        audience: str,
        issuer: str,
        leeway_seconds: int = 0,
        via: Literal["jwt", "internal"] = "jwt",
    ) -> None:
        self.algorithms = list(algorithms)
        if not self.algorithms or "none" in {a.lower() for a in self.algorithms}:
            raise ValueError("at least one real signing algorithm must be pinned")
        self.keys = keys
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway_seconds
        self.via = via

    def _key_for(self, token: str) -> Any:
        if not isinstance(self.keys, Mapping):
            return self.keys
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))
        if not isinstance(kid, str) or kid not in self.keys:
            raise Unauthorized("The token was signed by an unknown key.")
        return self.keys[kid]

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
            return principal_from_claims(claims, via=self.via)
        except Unauthorized:
            raise
        except (jwt.PyJWTError, ValueError) as exc:
            raise Unauthorized(f"The token is not valid: {exc}") from exc


def _email_verified(value: object) -> bool | None:
    """``email_verified`` as a bool: some identity providers send ``"true"``/``"false"``;
    any other value present counts as not verified."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def principal_from_claims(claims: Mapping[str, Any], *, via: str = "jwt") -> Principal:
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject.strip():
        # an empty subject names nobody: everything keyed by the caller would be shared
        raise Unauthorized("The token is not valid: its `sub` claim is empty.")
    tenant = claims.get("tenant_id")
    scope = claims.get("scope") or ""
    email = claims.get("email")
    return Principal(
        subject=subject,
        role=Role(claims.get("role", Role.USER)),
        tenant_id=UUID(tenant) if tenant else None,
        scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(scope),
        via=claims.get("via", via) if via == "internal" else via,
        email=email if isinstance(email, str) and email.strip() else None,
        email_verified=_email_verified(claims.get("email_verified")),
    )


def mint_token(
    principal: Principal,
    *,
    key: Any,
    audience: str,
    issuer: str,
    ttl_seconds: int = 60,
    algorithm: str = "HS256",
    kid: str | None = None,
    now: float | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    claims = principal.claims() | {
        "aud": audience,
        "iss": issuer,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
    }
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


# ---------------------------------------------------------------- user tokens of development
#: algorithms of a shared secret (the gateway pins either these or public-key ones)
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
DEV_USER_TOKEN_SECRET = "dev-jwt-secret-not-for-production-use"
USER_TOKEN_AUDIENCE = "stellara-api"
USER_TOKEN_ISSUER = "stellara-dev"


class UserTokenConfig(Protocol):
    """How user tokens are signed and checked: the gateway's ``jwt_*`` settings."""

    jwt_algorithms: list[str]
    jwt_secret: SecretStr
    jwt_audience: str
    jwt_issuer: str


class UserTokenSettings(BaseSettings):
    """The gateway's user-token settings (``GATEWAY_JWT_*``, same defaults), read by the tools
    that mint development tokens (``stellara token``, the demo, the benches) without the
    gateway's own settings class."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", env_file=None)

    jwt_algorithms: list[str] = ["HS256"]
    jwt_secret: SecretStr = SecretStr(DEV_USER_TOKEN_SECRET)
    jwt_audience: str = USER_TOKEN_AUDIENCE
    jwt_issuer: str = USER_TOKEN_ISSUER


def mint_user_token(
    settings: UserTokenConfig,
    principal: Principal,
    *,
    ttl_seconds: int = 3600,
    now: float | None = None,
) -> str:
    """A user token the gateway accepts, signed with the shared HS256 secret (development)."""
    hmac = [a for a in settings.jwt_algorithms if a in HMAC_ALGORITHMS]
    if not hmac:
        raise ValueError(
            "the gateway pins public-key algorithms: user tokens come from the identity provider"
        )
    return mint_token(
        principal,
        key=settings.jwt_secret.get_secret_value(),
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        ttl_seconds=ttl_seconds,
        algorithm=hmac[0],
        now=now,
    )


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send `Authorization: Bearer <token>`.")
    return token.strip()


def principal_dependency(verifier: TokenVerifier) -> Any:
    """A FastAPI dependency that yields the verified principal of a request."""

    async def current_principal(request: Request) -> Principal:
        principal = verifier.verify(bearer_token(request))
        request.state.principal = principal
        return principal

    return current_principal


def internal_verifier(settings: Any) -> TokenVerifier:
    return TokenVerifier(
        algorithms=["HS256"],
        keys=settings.internal_token_secret.get_secret_value(),
        audience=settings.internal_token_audience,
        issuer=settings.internal_token_issuer,
        leeway_seconds=5,
        via="internal",
    )


def mint_internal_token(settings: Any, principal: Principal, *, ttl_seconds: int = 60) -> str:
    return mint_token(
        principal,
        key=settings.internal_token_secret.get_secret_value(),
        audience=settings.internal_token_audience,
        issuer=settings.internal_token_issuer,
        ttl_seconds=ttl_seconds,
    )


def current_principal(request: Request) -> Principal:
    """The principal the app's auth dependency verified (see ``ServiceRuntime``)."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        verifier: TokenVerifier = request.app.state.token_verifier
        principal = verifier.verify(bearer_token(request))
        request.state.principal = principal
    return principal


#: ``principal: CurrentPrincipal`` in a route signature
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
