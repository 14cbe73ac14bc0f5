"""Tenant API keys: scoped, optionally expiring, shown once, stored only as a hash.

A key reads ``<prefix>_<lookup id>_<secret>``. The lookup id finds the row
without a tenant context (the key itself names the tenant); the SHA-256 of
the whole key is compared in constant time. The secret carries 256 random
bits, so a fast hash is enough: there is nothing to brute-force. Unknown,
revoked, expired and deleted-tenant keys all get the same answer.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts.events import TenantStatus
from tenant_svc.apikeys import repository
from tenant_svc.errors import ApiKeyNotFound, InvalidApiKey, TenantDeleted
from tenant_svc.models import ApiKey, Tenant
from tenant_svc.settings import Settings
from tenant_svc.tenants import repository as tenants_repo

LOOKUP_HEX = 16
_UNKNOWN_KEY_HASH = hashlib.sha256(b"stellara: no such key").digest()


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def new_key(prefix: str) -> tuple[str, str]:
    """A fresh (lookup id, full key)."""
    lookup_id = secrets.token_hex(LOOKUP_HEX // 2)
    return lookup_id, f"{prefix}_{lookup_id}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class Verified:
    key: ApiKey
    tenant: Tenant


async def create_key(
    session: AsyncSession,
    settings: Settings,
    tenant: Tenant,
    *,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
    actor: str | None,
) -> tuple[ApiKey, str]:
    """A new key and its secret (the only time the secret exists outside the caller)."""
    if tenant.status == TenantStatus.DELETED:
        raise TenantDeleted("A deleted tenant cannot get API keys.")
    unknown = sorted(set(scopes) - set(settings.api_key_scopes))
    if not scopes or unknown:
        raise InvalidApiKey(
            f"Unknown scopes: {', '.join(unknown)}."
            if unknown
            else "Give the key at least one scope.",
            field="scopes",
            allowed_scopes=list(settings.api_key_scopes),
        )
    now = datetime.now(UTC)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidApiKey("expires_at needs a time zone (e.g. `Z`).", field="expires_at")
        if expires_at <= now:
            raise InvalidApiKey("expires_at is in the past.", field="expires_at")
    lookup_id, secret = new_key(settings.api_key_prefix)
    key = await repository.add(
        session,
        ApiKey(
            id=uuid4(),
            tenant_id=tenant.id,
            name=name,
            lookup_id=lookup_id,
            secret_hash=hash_key(secret),
            scopes=sorted(set(scopes)),
            created_at=now,
            created_by=actor,
            expires_at=expires_at,
            revoked_at=None,
        ),
    )
    return key, secret


async def revoke_key(session: AsyncSession, tenant: Tenant, key_id: UUID) -> ApiKey:
    """Revoke a key for good (revoking a revoked key changes nothing)."""
    key = await repository.get(session, tenant.id, key_id, lock="update")
    if key is None:
        raise ApiKeyNotFound("No such API key in this tenant.", key_id=str(key_id))
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        await session.flush()
    return key


async def get_key(session: AsyncSession, tenant: Tenant, key_id: UUID) -> ApiKey:
    key = await repository.get(session, tenant.id, key_id)
    if key is None:
        raise ApiKeyNotFound("No such API key in this tenant.", key_id=str(key_id))
    return key


async def verify_key(session: AsyncSession, settings: Settings, presented: str) -> Verified | None:
    """The key and its tenant if ``presented`` is a live key; None for anything else.

    ``session`` is a system transaction: the key names its tenant.
    """
    parts = presented.split("_", 2)
    lookup_id = parts[1] if len(parts) == 3 and parts[0] == settings.api_key_prefix else ""
    key = None
    if len(lookup_id) == LOOKUP_HEX:
        key = await repository.by_lookup_id(session, lookup_id)
    stored = key.secret_hash if key is not None else _UNKNOWN_KEY_HASH
    if not hmac.compare_digest(stored, hash_key(presented)) or key is None:
        return None
    if key.revoked_at is not None:
        return None
    if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
        return None
    tenant = await tenants_repo.get(session, key.tenant_id)
    if tenant is None or tenant.status == TenantStatus.DELETED:
        return None
    return Verified(key, tenant)
