"""The gateway starts on real infrastructure, reports ready and documents its API."""

from __future__ import annotations

import httpx

from gateway.main import create_app
from gateway.routes import ROUTES, Service
from stellara_kit.testing import running_app

from .conftest import Tenants, user_headers, wait_until_ready


class TestReadiness:
    async def test_not_ready_until_the_tenant_directory_caught_up(self, settings) -> None:
        async with running_app(create_app(settings)) as http:
            first = await http.get("/readyz")
            if first.status_code == 503:  # the directory was still reading tenant.state
                assert "tenant_directory" in first.json()["detail"]
            await wait_until_ready(http)
            response = await http.get("/readyz")
        assert response.json()["checks"] == {"kafka": "ok", "tenant_directory": "ok"}

    async def test_liveness(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/healthz")).json() == {"status": "ok"}


class TestOpenApi:
    async def test_every_route_of_the_table_is_documented_with_roles_and_examples(
        self, client: httpx.AsyncClient
    ) -> None:
        document = (await client.get("/openapi.json")).json()
        for route in ROUTES:
            operation = document["paths"][route.path][route.method.lower()]
            assert operation["summary"]
            assert operation["operationId"] == route.operation_id
            assert "**Roles:**" in operation["description"]
            assert operation["x-roles"] == route.roles_text()
            assert operation["x-service"] == str(route.service)
            for code, answer in operation["responses"].items():
                body = (answer.get("content") or {}).get("application/json")
                if code.startswith("2") and body is not None:
                    assert "example" in body or "examples" in body, (route.path, code)
            if "requestBody" in operation:
                for content in operation["requestBody"]["content"].values():
                    ref = content["schema"].get("$ref")
                    if ref is not None:
                        assert ref.rsplit("/", 1)[1] in document["components"]["schemas"]
        ingestion = document["paths"]["/usage/events"]["post"]
        assert ingestion["x-service"] == str(Service.GATEWAY)
        assert "example" in ingestion["requestBody"]["content"]["application/json"]

    async def test_only_the_routes_of_the_table_are_public(self, client: httpx.AsyncClient) -> None:
        document = (await client.get("/openapi.json")).json()
        documented = {
            (method.upper(), path)
            for path, operations in document["paths"].items()
            for method in operations
        }
        operations = {"/healthz", "/readyz", "/metrics", "/asyncapi.json"}
        public = {(m, p) for m, p in documented if p not in operations}
        assert public == {(r.method, r.path) for r in ROUTES}

    async def test_swagger_ui_is_served(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/docs")
        assert response.status_code == 200
        assert "swagger" in response.text.lower()

    async def test_asyncapi_names_the_gateways_topics(self, client: httpx.AsyncClient) -> None:
        document = (await client.get("/asyncapi.json")).json()
        assert {c["address"] for c in document["channels"].values()} == {
            "usage.recorded",
            "tenant.state",
        }


class TestNoCatchAll:
    async def test_a_path_outside_the_table_is_404_and_reaches_no_service(
        self, client: httpx.AsyncClient, settings, tenants: Tenants, downstream
    ) -> None:
        headers = user_headers(settings, "platform_admin")
        response = await client.get(f"/tenants/{tenants.acme.tenant_id}/secrets", headers=headers)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert downstream.received() == []

    async def test_a_method_the_path_does_not_serve_is_405_allowing_every_method_it_does(
        self, client: httpx.AsyncClient, settings, tenants: Tenants, downstream
    ) -> None:
        headers = user_headers(settings, "platform_admin")
        response = await client.patch(f"/tenants/{tenants.acme.tenant_id}", headers=headers)
        assert response.status_code == 405
        assert response.headers["content-type"].startswith("application/problem+json")
        served = {r.method for r in ROUTES if r.path == "/tenants/{id}"}
        assert set(response.headers["allow"].split(", ")) == served
        assert served == {"GET", "PUT", "DELETE"}
        assert downstream.received() == []


class TestReadme:
    def test_the_readme_lists_every_route_and_setting(self) -> None:
        from pathlib import Path

        from gateway.settings import Settings

        readme = (Path(__file__).parents[1] / "README.md").read_text()
        for route in ROUTES:
            assert f"| {route.method} | `{route.path}` |" in readme, route.path
        shared = {"service_name", "environment", "database_url", "migration_database_url"}
        shared |= {"db_pool_size", "consumer_max_retries", "consumer_retry_backoff_ms"}
        shared |= {"relay_batch_size", "consumer_group"}
        for name in set(Settings.model_fields) - shared:
            assert f"`GATEWAY_{name.upper()}`" in readme, name
