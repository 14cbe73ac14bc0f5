"""The service starts on real infrastructure, reports ready, and has its default tenant."""

from __future__ import annotations

from typing import Any

import httpx

from stellara_contracts import decode_event, topics
from stellara_contracts.events import Role
from stellara_kit.testing import auth_headers, consume, running_app, wait_for
from tenant_svc.main import create_app
from tenant_svc.settings import Settings


async def test_ready_on_real_infrastructure(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert set(response.json()["checks"]) >= {"kafka"}


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"]


CREATED = "stellara.tenant.created.v1"


class TestDefaultTenant:
    async def test_main_is_active_after_startup(self, kit: Any) -> None:
        response = await kit.client.get("/tenants/main", headers=kit.admin())
        assert response.status_code == 200, response.text
        main = response.json()
        assert (main["slug"], main["status"], main["plan"]) == ("main", "active", "enterprise")
        async with kit.reader(topics.TENANT_STATE) as state:
            [(key, snapshot)] = await state.of_tenant(main["id"], "stellara.tenant.snapshot.v1")
        assert key == main["id"].encode()
        assert (snapshot.data.slug, snapshot.data.status) == ("main", "active")

    async def test_created_once_across_restarts_and_left_as_operators_changed_it(
        self, settings: Settings
    ) -> None:
        admin = auth_headers(settings, role=Role.PLATFORM_ADMIN)
        async with running_app(create_app(settings)) as client:
            first = (await client.get("/tenants/main", headers=admin)).json()
            renamed = await client.put(
                "/tenants/main", json={"name": "Headquarters"}, headers=admin
            )
            assert renamed.status_code == 200, renamed.text
        async with running_app(create_app(settings)) as client:
            again = (await client.get("/tenants/main", headers=admin)).json()
            later = await client.post(
                "/tenants", json={"name": "Acme", "slug": "acme"}, headers=admin
            )
            assert later.status_code == 201, later.text
            # the outbox publishes in order: once acme's creation is out, main's would be too
            await wait_for(
                lambda: consume(
                    settings.kafka_bootstrap_servers, settings.topic(topics.TENANT_EVENTS)
                ),
                until=lambda records: any(b"acme" in r.value for r in records),
            )
        assert (again["id"], again["name"], again["version"]) == (first["id"], "Headquarters", 2)
        assert again["status"] == "active"
        records = await consume(
            settings.kafka_bootstrap_servers, settings.topic(topics.TENANT_EVENTS)
        )
        created = [decode_event(topics.TENANT_EVENTS, r.value) for r in records]
        created_main = [e for e in created if e.type == CREATED and e.data.slug == "main"]
        # at least once: a copy may be published again, never a second creation (a new id)
        assert {(str(e.tenantid), e.id) for e in created_main} == {
            (first["id"], created_main[0].id)
        }

    async def test_the_slug_comes_from_the_settings(self, settings: Settings) -> None:
        home = settings.model_copy(update={"default_tenant_slug": "home"})
        admin = auth_headers(home, role=Role.PLATFORM_ADMIN)
        async with running_app(create_app(home)) as client:
            tenant = await client.get("/tenants/home", headers=admin)
            assert tenant.status_code == 200, tenant.text
            assert tenant.json()["status"] == "active"
            assert (await client.get("/tenants/main", headers=admin)).status_code == 404
