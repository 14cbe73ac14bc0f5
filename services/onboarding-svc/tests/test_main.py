"""The service starts on real infrastructure and reports ready."""

from __future__ import annotations

from uuid import uuid4

import httpx


async def test_ready_on_real_infrastructure(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert set(response.json()["checks"]) >= {"kafka"}


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"]


async def test_405_allows_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.put(f"/tenants/{uuid4()}/invitations/{uuid4()}")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["allow"] == "DELETE, GET"
