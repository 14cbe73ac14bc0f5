"""problem+json errors, health, readiness and metrics of a service app."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from stellara_kit.observability import install_observability
from stellara_kit.problems import (
    PROBLEM_JSON,
    Conflict,
    document_problems,
    install_problem_handlers,
    problem_responses,
)


class Body(BaseModel):
    name: str
    size: int


def make_app(checks: dict[str, Any] | None = None) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_observability(app, registry=CollectorRegistry(), checks=checks or {})

    @app.get("/things/{thing_id}")
    async def get_thing(thing_id: int) -> dict[str, int]:
        if thing_id == 1:
            raise Conflict("Thing 1 is busy.", allowed=["wait"])
        if thing_id == 2:
            raise RuntimeError("secret internals")
        return {"id": thing_id}

    @app.post("/things")
    async def post_thing(body: Body) -> Body:
        return body

    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    )


class TestProblems:
    async def test_domain_error_is_problem_json_with_extensions(self) -> None:
        async with client(make_app()) as http:
            response = await http.get("/things/1")
        assert response.status_code == 409
        assert response.headers["content-type"] == PROBLEM_JSON
        body = response.json()
        assert body["status"] == 409
        assert body["detail"] == "Thing 1 is busy."
        assert body["allowed"] == ["wait"]
        assert body["instance"] == "/things/1"

    async def test_validation_error_names_the_field(self) -> None:
        async with client(make_app()) as http:
            response = await http.post("/things", json={"name": "x", "size": "big"})
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_JSON
        assert any(e["location"] == "body.size" for e in response.json()["errors"])

    async def test_a_body_that_is_not_json_is_400_malformed_json_as_at_the_gateway(
        self,
    ) -> None:
        async with client(make_app()) as http:
            response = await http.post(
                "/things", content=b'{"name": ', headers={"content-type": "application/json"}
            )
        assert response.status_code == 400
        assert response.json()["type"] == "urn:stellara:problem:malformed-json"

    async def test_unknown_route_is_problem_json_404(self) -> None:
        async with client(make_app()) as http:
            response = await http.get("/nothing-here")
        assert response.status_code == 404
        assert response.json()["title"] == "Not Found"

    async def test_unexpected_error_is_500_without_stack_trace(self) -> None:
        async with client(make_app()) as http:
            response = await http.get("/things/2")
        assert response.status_code == 500
        assert response.headers["content-type"] == PROBLEM_JSON
        assert "secret internals" not in response.text
        assert "Traceback" not in response.text
        assert response.headers["x-request-id"] in response.json()["detail"]

    async def test_the_error_log_names_the_route_not_the_path(self) -> None:
        """A path can carry a secret (an invitation token); the log keeps the template."""
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logger = logging.getLogger("stellara_kit.problems")
        logger.addHandler(handler)
        app = make_app()

        @app.post("/invitations/{token}/accept")
        async def accept(token: str) -> None:
            raise RuntimeError("broken")

        secret = "s3cr3t-token-value"
        try:
            async with client(app) as http:
                response = await http.post(f"/invitations/{secret}/accept")
        finally:
            logger.removeHandler(handler)
        assert response.status_code == 500
        logged = "\n".join(r.getMessage() for r in records)
        assert "/invitations/{token}/accept" in logged
        assert secret not in logged

    async def test_405_allows_every_method_of_the_path(self) -> None:
        app = make_app()

        @app.put("/things/{thing_id}")
        async def put_thing(thing_id: int) -> None:
            return None

        @app.delete("/things/{thing_id}")
        async def delete_thing(thing_id: int) -> None:
            return None

        async with client(app) as http:
            response = await http.patch("/things/3")
            listing = await http.delete("/things")
        assert response.status_code == 405
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.headers["allow"] == "DELETE, GET, PUT"
        assert listing.status_code == 405
        assert listing.headers["allow"] == "POST"

    async def test_405_on_a_literal_path_allows_only_its_own_methods(self) -> None:
        app = make_app()
        router = APIRouter()

        @router.post("/things/{thing_id}/import")
        async def import_things(thing_id: int) -> None:
            return None

        @router.get("/things/{thing_id}/{name}")
        async def get_named(thing_id: int, name: str) -> None:
            return None

        app.include_router(router)
        async with client(app) as http:
            literal = await http.options("/things/3/import")
            templated = await http.delete("/things/3/other")
        assert literal.status_code == 405 and literal.headers["allow"] == "POST"
        assert templated.status_code == 405 and templated.headers["allow"] == "GET"

    async def test_a_secret_in_the_path_is_not_echoed(self) -> None:
        app = make_app()

        @app.post("/invitations/{token}/accept")
        async def accept(token: str) -> None:
            raise Conflict("Already accepted.")

        secret = "s3cr3t-token-value"
        async with client(app) as http:
            refused = await http.post(f"/invitations/{secret}/accept")
            wrong_method = await http.get(f"/invitations/{secret}/accept")
            unmatched = await http.get(f"/invitations/{secret}")
        for answer in (refused, wrong_method):
            assert answer.json()["instance"] == "/invitations/{token}/accept"
        assert unmatched.status_code == 404 and "instance" not in unmatched.json()
        assert all(secret not in a.text for a in (refused, wrong_method, unmatched))


class TestHealthAndMetrics:
    async def test_healthz_answers(self) -> None:
        async with client(make_app()) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}

    async def test_readyz_is_503_naming_the_failing_dependency(self) -> None:
        async def ok() -> None:
            return None

        async def broken() -> None:
            raise ConnectionError("refused")

        async with client(make_app({"database": ok, "kafka": broken})) as http:
            response = await http.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["checks"]["database"] == "ok"
        assert "refused" in body["checks"]["kafka"]
        assert "kafka" in body["detail"]

    async def test_metrics_count_requests_by_route_template(self) -> None:
        async with client(make_app()) as http:
            await http.get("/things/7")
            await http.get("/things/8")
            text = (await http.get("/metrics")).text
        assert (
            'stellara_http_requests_total{method="GET",route="/things/{thing_id}",status="200"} 2.0'
            in text
        )

    @pytest.mark.parametrize("given", [None, "abc123"])
    async def test_request_id_is_returned(self, given: str | None) -> None:
        headers = {"x-request-id": given} if given else {}
        async with client(make_app()) as http:
            response = await http.get("/things/5", headers=headers)
        assert response.headers["x-request-id"] == (given or response.headers["x-request-id"])
        assert len(response.headers["x-request-id"]) >= 6


class TestDocumentedProblems:
    def test_validation_errors_are_documented_as_the_problems_they_are(self) -> None:
        app = make_app()
        document_problems(app)
        document = app.openapi()
        answer = document["paths"]["/things"]["post"]["responses"]["422"]
        assert answer["content"] == {
            PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
        assert document["components"]["schemas"]["Problem"]["required"] == [
            "type",
            "title",
            "status",
        ]
        assert "HTTPValidationError" not in str(document)
        assert "400" in document["paths"]["/things"]["post"]["responses"]

    def test_operations_endpoints_are_documented_as_they_answer(self) -> None:
        document = make_app().openapi()
        metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
        assert set(metrics) == {"text/plain"}
        ready = document["paths"]["/readyz"]["get"]["responses"]
        assert set(ready["503"]["content"]) == {PROBLEM_JSON}

    def test_retry_after_is_documented_where_it_is_sent(self) -> None:
        documented = problem_responses(429, 503, 404)
        assert "Retry-After" in documented[429]["headers"]
        assert "Retry-After" in documented[503]["headers"]
        assert "headers" not in documented[404]
