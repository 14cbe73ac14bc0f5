"""The service starts on real infrastructure, reports ready, and documents its API."""

from __future__ import annotations

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from usage_svc import api

from .conftest import RunningService

CSV_ROUTES = {
    "/tenants/{tenant_id}/usage",
    "/tenants/{tenant_id}/usage/daily",
    "/tenants/{tenant_id}/usage/trends",
    "/tenants/{tenant_id}/usage/invoice-preview",
}


async def test_ready_on_real_infrastructure(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert set(response.json()["checks"]) >= {"kafka", "database", "tenant_directory"}


def _get_routes() -> list[APIRoute]:
    """The service's own GET routes."""
    return [r for r in api.router.routes if isinstance(r, APIRoute) and "GET" in r.methods]


class TestOpenApi:
    async def test_openapi_is_served(self, service: RunningService) -> None:
        response = await service.http.get("/openapi.json")
        assert response.status_code == 200
        assert response.json()["info"]["title"] == "Stellara usage-svc"

    async def test_every_read_has_a_summary_a_description_and_examples(
        self, service: RunningService
    ) -> None:
        document = (await service.http.get("/openapi.json")).json()
        routes = _get_routes()
        assert {r.path for r in routes} == CSV_ROUTES | {"/plans", "/meters"}
        for route in routes:
            operation = document["paths"][route.path]["get"]
            assert operation["summary"], route.path
            assert operation["description"], route.path
            for parameter in operation.get("parameters", []):
                assert parameter["schema"].get("examples"), (route.path, parameter["name"])
            content = operation["responses"]["200"]["content"]
            assert "example" in content["application/json"], route.path
            assert ("text/csv" in content) == (route.path in CSV_ROUTES), route.path
            if route.path in CSV_ROUTES:
                assert content["text/csv"]["example"].count("\n") >= 2, route.path

    @pytest.mark.parametrize("path", sorted(CSV_ROUTES | {"/plans", "/meters"}))
    async def test_each_json_example_is_a_valid_answer(
        self, service: RunningService, path: str
    ) -> None:
        document = (await service.http.get("/openapi.json")).json()
        (route,) = [r for r in _get_routes() if r.path == path]
        example = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"][
            "example"
        ]
        TypeAdapter(route.response_model).validate_python(example)
