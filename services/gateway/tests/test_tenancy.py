"""Tenant resolution (path, header, subdomain, token, default) and the tenant guard.

Tenants reach the gateway as TenantSnapshot events on the test's own
``tenant.state`` topic; the gateway resolves them from its directory.
"""

from __future__ import annotations

import httpx

from gateway.settings import Settings
from stellara_contracts.events import TenantStatus
from stellara_kit.testing import Infrastructure, wait_for

from .conftest import (
    StandIns,
    Tenants,
    gateway_client,
    gateway_settings,
    publish_snapshots,
    snapshot,
    unique,
    user_headers,
)


class TestResolution:
    async def test_the_path_may_name_the_tenant_by_slug(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        headers = user_headers(settings, "user", tenants.acme.tenant_id)
        response = await client.get(
            f"/tenants/{tenants.acme.slug}/config?category=billing", headers=headers
        )
        assert response.status_code == 200, response.text
        [call] = downstream.tenant.calls("/tenants")
        assert call.path == f"/tenants/{tenants.acme.tenant_id}/config"
        assert call.query == "category=billing"
        assert call.headers["x-tenant-id"] == str(tenants.acme.tenant_id)

    async def test_the_header_names_the_tenant_for_routes_without_one_in_the_path(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        headers = user_headers(settings, "platform_admin") | {"x-tenant-id": tenants.globex.slug}
        assert (await client.get("/plans", headers=headers)).status_code == 200
        [call] = downstream.usage.calls("/plans")
        assert call.headers["x-tenant-id"] == str(tenants.globex.tenant_id)

    async def test_the_token_names_the_tenant_when_nothing_else_does(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        headers = user_headers(settings, "user", tenants.acme.tenant_id)
        assert (await client.get("/meters", headers=headers)).status_code == 200
        [call] = downstream.usage.calls("/meters")
        assert call.headers["x-tenant-id"] == str(tenants.acme.tenant_id)

    async def test_the_header_name_is_configurable(
        self,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
        downstream: StandIns,
    ) -> None:
        custom = gateway_settings(
            infrastructure, topic_prefix, downstream, tenant_header_name="X-Org"
        )
        async with gateway_client(custom) as client:
            headers = user_headers(custom, "platform_admin") | {"x-org": tenants.acme.slug}
            assert (await client.get("/plans", headers=headers)).status_code == 200
        [call] = downstream.usage.calls("/plans")
        assert call.headers["x-tenant-id"] == str(tenants.acme.tenant_id)

    async def test_the_subdomain_names_the_tenant_when_enabled(
        self,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
        downstream: StandIns,
    ) -> None:
        custom = gateway_settings(
            infrastructure,
            topic_prefix,
            downstream,
            tenant_subdomain_enabled=True,
            tenant_base_domain="stellara.test",
        )
        async with gateway_client(custom) as client:
            admin = user_headers(custom, "platform_admin")
            host = {"host": f"{tenants.globex.slug}.stellara.test"}
            assert (await client.get("/plans", headers=admin | host)).status_code == 200
            acme_user = user_headers(custom, "user", tenants.acme.tenant_id)
            refused = await client.get("/plans", headers=acme_user | host)
        [call] = downstream.usage.calls("/plans")
        assert call.headers["x-tenant-id"] == str(tenants.globex.tenant_id)
        assert refused.status_code == 403

    async def test_callers_without_a_tenant_get_the_default_tenant(
        self,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        downstream: StandIns,
    ) -> None:
        main = snapshot("main")
        await publish_snapshots(infrastructure, topic_prefix, main)
        async with gateway_client(settings) as client:
            headers = user_headers(settings, "user")  # a token that names no tenant
            by_slug = await client.get("/tenants/main", headers=headers)
            plans = await client.get("/plans", headers=headers)
        assert by_slug.status_code == 200, by_slug.text
        assert plans.status_code == 200
        call = downstream.tenant.calls("/tenants")[0]
        assert call.path == f"/tenants/{main.tenant_id}"
        assert call.identity is not None and call.identity["tenant_id"] == str(main.tenant_id)
        assert downstream.usage.calls("/plans")[0].headers["x-tenant-id"] == str(main.tenant_id)


class TestGuard:
    async def test_a_suspended_tenants_users_get_403_with_the_reason(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.suspended.tenant_id)
        response = await client.get(f"/tenants/{tenants.suspended.tenant_id}", headers=headers)
        assert response.status_code == 403
        body = response.json()
        assert body["type"].endswith("tenant-suspended")
        assert body["reason"] == "Unpaid invoice 2026-11"
        assert "Unpaid invoice 2026-11" in body["detail"]
        assert downstream.received() == []

    async def test_platform_admins_are_not_blocked_by_suspension(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        headers = user_headers(settings, "platform_admin")
        response = await client.post(
            f"/tenants/{tenants.suspended.tenant_id}/activate", headers=headers
        )
        assert response.status_code == 201

    async def test_a_pending_tenant_is_open_to_its_admins_only(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        pending = tenants.pending.tenant_id
        admin = user_headers(settings, "tenant_admin", pending)
        user = user_headers(settings, "user", pending)
        onboard = await client.post(f"/tenants/{pending}/onboard", headers=admin, json={})
        status = await client.get(f"/tenants/{pending}/onboarding-status", headers=user)
        assert onboard.status_code == 201
        assert status.status_code == 403
        assert status.json()["type"].endswith("tenant-pending")

    async def test_a_deleted_tenant_is_404(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.deleted.tenant_id)
        response = await client.get(f"/tenants/{tenants.deleted.tenant_id}/config", headers=headers)
        assert response.status_code == 404

    async def test_an_unknown_tenant_is_404_by_id_or_slug(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        headers = user_headers(settings, "user", tenants.acme.tenant_id)
        for ref in ("5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11", "no-such-tenant"):
            assert (await client.get(f"/tenants/{ref}", headers=headers)).status_code == 404

    async def test_another_tenants_path_looks_like_an_unknown_tenant(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
        other = await client.get(f"/tenants/{tenants.globex.tenant_id}/usage", headers=headers)
        unknown = await client.get(
            "/tenants/5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11/usage", headers=headers
        )
        assert other.status_code == unknown.status_code == 404
        assert other.json()["detail"] == unknown.json()["detail"]
        assert tenants.globex.name not in other.text

    async def test_a_token_for_one_tenant_with_a_header_naming_another_is_403(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
        for ref in (tenants.globex.slug, str(tenants.globex.tenant_id), "no-such-tenant"):
            response = await client.get(
                f"/tenants/{tenants.acme.tenant_id}", headers=headers | {"x-tenant-id": ref}
            )
            assert response.status_code == 403, ref
            assert response.json()["type"].endswith("tenant-mismatch")
        assert downstream.received() == []

    async def test_the_header_may_repeat_the_callers_own_tenant(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants
    ) -> None:
        headers = user_headers(settings, "user", tenants.acme.tenant_id) | {
            "x-tenant-id": tenants.acme.slug
        }
        assert (
            await client.get(f"/tenants/{tenants.acme.tenant_id}", headers=headers)
        ).status_code == 200


class TestDirectoryFollowsTheTopic:
    async def test_a_suspension_published_on_tenant_state_takes_effect(
        self,
        client: httpx.AsyncClient,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
    ) -> None:
        acme = tenants.acme
        headers = user_headers(settings, "user", acme.tenant_id)
        assert (await client.get(f"/tenants/{acme.tenant_id}", headers=headers)).status_code == 200
        suspended = acme.model_copy(
            update={"status": TenantStatus.SUSPENDED, "status_reason": "Abuse report", "version": 2}
        )
        await publish_snapshots(infrastructure, topic_prefix, suspended)
        response = await wait_for(
            lambda: client.get(f"/tenants/{acme.tenant_id}", headers=headers),
            until=lambda r: r.status_code == 403,
        )
        assert response.json()["reason"] == "Abuse report"

    async def test_a_tenant_created_after_start_becomes_reachable(
        self,
        client: httpx.AsyncClient,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
    ) -> None:
        newcomer = snapshot(unique("newco"))
        headers = user_headers(settings, "user", newcomer.tenant_id)
        assert (await client.get(f"/tenants/{newcomer.slug}", headers=headers)).status_code == 404
        await publish_snapshots(infrastructure, topic_prefix, newcomer)
        await wait_for(
            lambda: client.get(f"/tenants/{newcomer.slug}", headers=headers),
            until=lambda r: r.status_code == 200,
        )

    async def test_a_platform_admin_reaches_a_tenant_the_directory_does_not_know_yet(
        self, client: httpx.AsyncClient, settings: Settings, downstream: StandIns
    ) -> None:
        # a tenant just created: tenant-svc knows it before its snapshot arrives here
        tenant_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
        headers = user_headers(settings, "platform_admin")
        assert (await client.get(f"/tenants/{tenant_id}", headers=headers)).status_code == 200
        assert downstream.tenant.calls("/tenants")[0].path == f"/tenants/{tenant_id}"
