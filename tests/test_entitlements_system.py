"""The entitlement check end to end: usage ingested through the gateway shows in
``GET /tenants/{id}/entitlements`` within the stated bound (the ingester's batch plus the
outbox relay's delay), a hard limit reached is refused, and the tenant's features follow
its configuration."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from stellara_kit.testing import wait_for

from .test_system import admin_headers, create_active_tenant

#: the bound the README states for the whole system (relay idle poll at worst)
CONSISTENCY_BOUND_SECONDS = 5.0


async def entitlement(
    gateway: httpx.AsyncClient, tenant: uuid.UUID, headers: dict[str, str], feature: str
) -> dict[str, Any]:
    response = await gateway.get(
        f"/tenants/{tenant}/entitlements", params={"feature": feature}, headers=headers
    )
    if response.status_code != 200:
        return {"status": response.status_code}
    (metered,) = response.json()["metered"]
    return dict(metered)


class TestEntitlements:
    async def test_ingested_usage_shows_within_the_bound_and_a_hard_limit_stops(
        self, system: Any, gateway: httpx.AsyncClient
    ) -> None:
        tenant = await create_active_tenant(system, gateway, plan="free")  # workflow_runs: 100
        admin = admin_headers(system)
        created = await gateway.post(
            f"/tenants/{tenant}/api-keys",
            json={"name": "entitlements", "scopes": ["entitlements:read"]},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        key = {"x-api-key": created.json()["secret"]}
        before = await wait_for(
            lambda: entitlement(gateway, tenant, key, "workflow_runs"),
            until=lambda e: "used" in e,
            timeout=30,
        )
        assert (before["used"], before["limit"], before["allowed"]) == (0, 100, True)

        now = datetime.now(UTC).isoformat()
        batch = [{"metric": "workflow_runs", "value": 1, "occurred_at": now}] * 60
        ingest = admin | {"x-tenant-id": str(tenant)}
        accepted = await gateway.post("/usage/events", json={"events": batch}, headers=ingest)
        assert accepted.status_code == 202, accepted.text
        sent = time.monotonic()
        seen = await wait_for(
            lambda: entitlement(gateway, tenant, key, "workflow_runs"),
            until=lambda e: e.get("used") == 60,
            timeout=30,
            interval=0.02,
        )
        assert time.monotonic() - sent < CONSISTENCY_BOUND_SECONDS
        assert (seen["remaining"], seen["allowed"]) == (40, True)

        rest = [{"metric": "workflow_runs", "value": 1, "occurred_at": now}] * 40
        accepted = await gateway.post("/usage/events", json={"events": rest}, headers=ingest)
        assert accepted.status_code == 202, accepted.text
        sent = time.monotonic()
        reached = await wait_for(
            lambda: entitlement(gateway, tenant, key, "workflow_runs"),
            until=lambda e: e.get("used") == 100,
            timeout=30,
            interval=0.02,
        )
        assert time.monotonic() - sent < CONSISTENCY_BOUND_SECONDS
        assert (reached["remaining"], reached["allowed"]) == (0, False)

    async def test_the_tenants_features_follow_its_configuration(
        self, system: Any, gateway: httpx.AsyncClient
    ) -> None:
        tenant = await create_active_tenant(system, gateway)
        admin = admin_headers(system)
        changed = await gateway.patch(
            f"/tenants/{tenant}/config",
            json={
                "changes": [
                    {"op": "set", "category": "features", "key": "beta_dashboard", "value": True}
                ]
            },
            headers=admin,
        )
        assert changed.status_code == 200, changed.text

        async def features() -> list[str] | None:
            response = await gateway.get(f"/tenants/{tenant}/entitlements", headers=admin)
            return response.json()["features"] if response.status_code == 200 else None

        assert await wait_for(features, until=lambda f: f == ["beta_dashboard"], timeout=30)
