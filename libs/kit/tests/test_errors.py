"""A service's domain errors answer as the problem its table names."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from stellara_kit.errors import BadCursor, DomainError, TenantNotFound, install_domain_errors
from stellara_kit.problems import install_problem_handlers


class Refused(DomainError):
    pass


class RefusedHarder(Refused):
    pass


class Unmapped(DomainError):
    pass


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_domain_errors(app, {Refused: (409, "refused", "Refused")})
    raised = {
        "refused": Refused("No.", slug="acme"),
        "harder": RefusedHarder("Still no."),
        "unmapped": Unmapped("Hm."),
        "tenant": TenantNotFound("No such tenant."),
        "cursor": BadCursor("Not ours."),
    }

    @app.get("/{name}")
    async def fail(name: str) -> None:
        raise raised[name]

    return app


async def _get(path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


class TestDomainErrors:
    async def test_a_mapped_error_is_its_problem_with_its_facts(self) -> None:
        response = await _get("/refused")
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json() == {
            "type": "urn:stellara:problem:refused",
            "title": "Refused",
            "status": 409,
            "detail": "No.",
            "instance": "/refused",
            "slug": "acme",
        }

    async def test_a_subclass_answers_as_its_mapped_base(self) -> None:
        response = await _get("/harder")
        assert (response.status_code, response.json()["type"]) == (
            409,
            "urn:stellara:problem:refused",
        )

    async def test_kit_errors_are_mapped_in_every_service(self) -> None:
        tenant, cursor = await _get("/tenant"), await _get("/cursor")
        assert (tenant.status_code, tenant.json()["type"]) == (
            404,
            "urn:stellara:problem:tenant-not-found",
        )
        assert (cursor.status_code, cursor.json()["title"]) == (400, "Bad cursor")

    async def test_an_unmapped_error_is_a_bad_request(self) -> None:
        response = await _get("/unmapped")
        assert (response.status_code, response.json()["type"]) == (
            400,
            "urn:stellara:problem:bad-request",
        )
