"""Tenant API keys: created with the secret shown once, stored as a hash, listed, verified, revoked."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest_asyncio

from stellara_kit.db import asyncpg_dsn
from stellara_kit.testing import TestDatabase

VERIFY = "/internal/api-keys/verify"


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return dict(response.json())


class Rows:
    """The service's database read as its superuser (beneath row-level security)."""

    def __init__(self, url: str) -> None:
        self.dsn = asyncpg_dsn(url)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()


@pytest_asyncio.fixture
async def rows(test_database: TestDatabase) -> Rows:
    return Rows(test_database.admin_url)


async def create(
    kit: Any, tenant: dict[str, Any], scopes: list[str] | None = None, **fields: Any
) -> httpx.Response:
    extra_headers = fields.pop("headers", {})
    return await kit.client.post(
        f"/tenants/{tenant['id']}/api-keys",
        json={
            "name": "billing worker",
            "scopes": ["usage:write"] if scopes is None else scopes,
            **fields,
        },
        headers={**kit.tenant_admin(tenant["id"]), **extra_headers},
    )


async def new_key(kit: Any, tenant: dict[str, Any], **fields: Any) -> dict[str, Any]:
    response = await create(kit, tenant, **fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def verify(kit: Any, key: str) -> httpx.Response:
    return await kit.client.post(VERIFY, json={"key": key}, headers=kit.admin())


class TestCreate:
    async def test_the_secret_is_shown_once_and_only_its_hash_is_stored(
        self, kit: Any, rows: Rows
    ) -> None:
        tenant = await kit.active_tenant("acme")
        created = await new_key(kit, tenant, scopes=["usage:write", "tenant:read"])
        secret = created["secret"]
        assert secret.startswith(created["prefix"] + "_")
        assert created["prefix"].startswith("stk_")
        assert created["scopes"] == ["tenant:read", "usage:write"]
        assert created["created_by"] == "ada"

        [row] = await rows.fetch("SELECT * FROM tenant_api_keys WHERE id = $1", UUID(created["id"]))
        assert bytes(row["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
        # what follows the prefix (its random part may itself hold "_")
        random_part = secret.removeprefix(created["prefix"] + "_")
        assert len(random_part) >= 32
        for column, value in row.items():
            assert random_part not in str(value), column
            assert random_part.encode() not in (value if isinstance(value, bytes) else b""), column

    async def test_unknown_scopes_and_past_or_naive_expiry_are_422(self, kit: Any) -> None:
        tenant = await kit.active_tenant("acme")
        body = problem(await create(kit, tenant, scopes=["usage:write", "root"]), 422)
        assert "usage:write" in body["allowed_scopes"]
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        assert problem(await create(kit, tenant, expires_at=past), 422)["field"] == "expires_at"
        naive = "2099-01-01T00:00:00"
        assert problem(await create(kit, tenant, expires_at=naive), 422)["field"] == "expires_at"
        problem(await create(kit, tenant, scopes=[]), 422)

    async def test_a_retried_create_does_not_show_the_secret_again(self, kit: Any) -> None:
        tenant = await kit.active_tenant("acme")
        headers = {"Idempotency-Key": "create-worker-key"}
        created = await new_key(kit, tenant, headers=headers)
        retry = await create(kit, tenant, headers=headers)
        body = problem(retry, 409)
        assert (body["key_id"], body["prefix"]) == (created["id"], created["prefix"])
        assert created["secret"] not in retry.text
        listed = await kit.client.get(f"/tenants/{tenant['id']}/api-keys", headers=kit.admin())
        assert [k["id"] for k in listed.json()["items"]] == [created["id"]]

    async def test_only_admins_of_the_tenant_create_keys(self, kit: Any) -> None:
        acme = await kit.active_tenant("acme")
        globex = await kit.active_tenant("globex")
        path = f"/tenants/{acme['id']}/api-keys"
        body = {"name": "x", "scopes": ["tenant:read"]}
        problem(await kit.client.post(path, json=body, headers=kit.user(acme["id"])), 403)
        problem(await kit.client.post(path, json=body, headers=kit.tenant_admin(globex["id"])), 404)


class TestList:
    async def test_keys_are_listed_without_secrets_and_revoked_ones_only_when_asked(
        self, kit: Any
    ) -> None:
        tenant = await kit.active_tenant("acme")
        first = await new_key(kit, tenant)
        second = await new_key(kit, tenant, scopes=["tenant:read"])
        path = f"/tenants/{tenant['id']}/api-keys"
        revoked = await kit.client.delete(f"{path}/{first['id']}", headers=kit.admin())
        assert revoked.status_code == 200, revoked.text

        live = await kit.client.get(path, headers=kit.tenant_admin(tenant["id"]))
        every = await kit.client.get(path, params={"include_revoked": "true"}, headers=kit.admin())
        one = await kit.client.get(f"{path}/{second['id']}", headers=kit.admin())
        assert [k["id"] for k in live.json()["items"]] == [second["id"]]
        assert [k["id"] for k in every.json()["items"]] == [first["id"], second["id"]]
        assert one.json()["prefix"] == second["prefix"]
        for response in (live, every, one):
            assert response.status_code == 200, response.text
            assert "secret" not in response.text
            for created in (first, second):
                assert created["secret"] not in response.text

    async def test_another_tenants_key_is_not_found(self, kit: Any) -> None:
        acme = await kit.active_tenant("acme")
        globex = await kit.active_tenant("globex")
        theirs = await new_key(kit, globex)
        mine = kit.tenant_admin(acme["id"])
        for path in (
            f"/tenants/{acme['id']}/api-keys/{theirs['id']}",
            f"/tenants/{globex['id']}/api-keys/{theirs['id']}",
        ):
            problem(await kit.client.get(path, headers=mine), 404)
            problem(await kit.client.delete(path, headers=mine), 404)
        assert (await verify(kit, theirs["secret"])).json()["valid"] is True


class TestVerify:
    async def test_a_live_key_verifies_with_its_tenant_and_scopes(self, kit: Any) -> None:
        tenant = await kit.active_tenant("acme")
        created = await new_key(kit, tenant, scopes=["usage:write", "tenant:read"])
        response = await verify(kit, created["secret"])
        assert response.status_code == 200, response.text
        assert response.json() == {
            "valid": True,
            "key_id": created["id"],
            "tenant_id": tenant["id"],
            "tenant_slug": "acme",
            "tenant_status": "active",
            "scopes": ["tenant:read", "usage:write"],
        }

    async def test_unknown_wrong_revoked_expired_and_deleted_tenant_keys_get_one_answer(
        self, kit: Any, rows: Rows
    ) -> None:
        tenant = await kit.active_tenant("acme")
        gone = await kit.active_tenant("globex")
        revoked = await new_key(kit, tenant)
        expired = await new_key(
            kit, tenant, expires_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat()
        )
        live = await new_key(kit, tenant)
        of_deleted = await new_key(kit, gone)
        assert (
            await kit.client.delete(
                f"/tenants/{tenant['id']}/api-keys/{revoked['id']}", headers=kit.admin()
            )
        ).status_code == 200
        await rows.fetch(
            "UPDATE tenant_api_keys SET expires_at = now() - interval '1 second' WHERE id = $1",
            UUID(expired["id"]),
        )
        assert (
            await kit.client.delete(f"/tenants/{gone['id']}", headers=kit.admin())
        ).status_code == 200

        wrong_secret = live["secret"][:-4] + (
            "AAAA" if not live["secret"].endswith("AAAA") else "BBBB"
        )
        presented = [
            f"stk_{uuid4().hex[:16]}_{'x' * 43}",  # well formed, unknown
            "not a key at all",
            wrong_secret,
            revoked["secret"],
            expired["secret"],
            of_deleted["secret"],
        ]
        answers = [await verify(kit, key) for key in presented]
        for key, answer in zip(presented, answers, strict=True):
            assert answer.status_code == 200, key
            assert answer.content == b'{"valid":false}', key
        assert (await verify(kit, live["secret"])).json()["valid"] is True

    async def test_only_the_platform_verifies_keys(self, kit: Any) -> None:
        tenant = await kit.active_tenant("acme")
        created = await new_key(kit, tenant)
        response = await kit.client.post(
            VERIFY, json={"key": created["secret"]}, headers=kit.tenant_admin(tenant["id"])
        )
        problem(response, 403)
        problem(await kit.client.post(VERIFY, json={"key": created["secret"]}), 401)


class TestRevoke:
    async def test_a_revoked_key_stops_verifying_and_revoking_again_is_harmless(
        self, kit: Any
    ) -> None:
        tenant = await kit.active_tenant("acme")
        created = await new_key(kit, tenant)
        assert (await verify(kit, created["secret"])).json()["valid"] is True
        path = f"/tenants/{tenant['id']}/api-keys/{created['id']}"
        first = await kit.client.delete(path, headers=kit.tenant_admin(tenant["id"]))
        assert first.status_code == 200, first.text
        assert first.json()["revoked_at"]
        again = await kit.client.delete(path, headers=kit.tenant_admin(tenant["id"]))
        assert again.json()["revoked_at"] == first.json()["revoked_at"]
        assert (await verify(kit, created["secret"])).json() == {"valid": False}

    async def test_unknown_key_is_404(self, kit: Any) -> None:
        tenant = await kit.active_tenant("acme")
        response = await kit.client.delete(
            f"/tenants/{tenant['id']}/api-keys/{uuid4()}", headers=kit.admin()
        )
        problem(response, 404)
