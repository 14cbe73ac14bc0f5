"""The gateway refuses NUL in what it reads itself (path, query, headers) before routing;
bodies go on untouched to the owning service, which refuses what it cannot store."""

from __future__ import annotations

import httpx

from gateway.settings import Settings

from .conftest import StandIns, Tenants, user_headers


def locations(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return [e["location"] for e in response.json()["errors"]]


class TestNulIsRefusedAtTheGateway:
    async def test_in_a_query_parameter(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        tenant = tenants.acme.tenant_id
        response = await client.get(
            f"/tenants/{tenant}/config/history",
            params={"key": "a\x00b"},
            headers=user_headers(settings, "tenant_admin", tenant),
        )
        assert locations(response) == ["query.key"]
        assert downstream.received() == []

    async def test_in_a_path_parameter(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        tenant = tenants.acme.tenant_id
        response = await client.get(
            f"/tenants/{tenant}/members/a%00b",
            headers=user_headers(settings, "tenant_admin", tenant),
        )
        assert locations(response) == ["path.user_id"]
        assert downstream.received() == []

    async def test_in_a_header_it_reads(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        response = await client.get(
            "/tenants",
            headers={**user_headers(settings, "platform_admin"), "x-tenant-id": "a\x00b"},
        )
        assert locations(response) == ["header.x-tenant-id"]
        assert downstream.received() == []


async def test_a_body_goes_on_to_the_owning_service_untouched(
    client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
) -> None:
    tenant = tenants.acme.tenant_id
    body = b'{"value": NaN}'
    response = await client.put(
        f"/tenants/{tenant}/config/general.locale",
        content=body,
        headers={
            **user_headers(settings, "tenant_admin", tenant),
            "content-type": "application/json",
        },
    )
    assert response.status_code == 200
    assert [r.body for r in downstream.tenant.calls("/tenants/")] == [body]
