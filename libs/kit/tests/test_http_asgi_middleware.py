"""The plain-ASGI request-context middleware behaves like the default one."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry

from stellara_kit.logs import request_id_var, trace_id_var
from stellara_kit.observability import install_observability
from stellara_kit.problems import PROBLEM_JSON, Conflict, install_problem_handlers


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_observability(app, registry=CollectorRegistry(), checks={}, asgi_middleware=True)

    @app.get("/things/{thing_id}")
    async def get_thing(thing_id: int, request: Request) -> dict[str, object]:
        if thing_id == 1:
            raise Conflict("Thing 1 is busy.")
        if thing_id == 2:
            raise RuntimeError("secret internals")
        return {
            "id": thing_id,
            "state_request_id": request.state.request_id,
            "log_request_id": request_id_var.get(),
            "log_trace_id": trace_id_var.get(),
        }

    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    )


class TestAsgiRequestContext:
    @pytest.mark.parametrize("given", [None, "abc123"])
    async def test_the_request_id_reaches_the_route_the_logs_and_the_response(
        self, given: str | None
    ) -> None:
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        headers = {"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
        if given:
            headers["x-request-id"] = given
        async with client(make_app()) as http:
            response = await http.get("/things/5", headers=headers)
        body = response.json()
        request_id = response.headers["x-request-id"]
        assert request_id == (given or request_id) and len(request_id) >= 6
        assert body["state_request_id"] == body["log_request_id"] == request_id
        assert body["log_trace_id"] == trace
        assert response.headers.get_list("x-request-id") == [request_id]

    async def test_a_domain_error_is_still_problem_json_with_the_request_id(self) -> None:
        async with client(make_app()) as http:
            response = await http.get("/things/1")
        assert response.status_code == 409
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.headers["x-request-id"]

    async def test_an_unexpected_error_is_500_without_stack_trace(self) -> None:
        async with client(make_app()) as http:
            response = await http.get("/things/2")
        assert response.status_code == 500
        assert response.headers["content-type"] == PROBLEM_JSON
        assert "secret internals" not in response.text
        assert response.headers["x-request-id"] in response.json()["detail"]

    async def test_metrics_count_requests_by_route_template_and_status(self) -> None:
        async with client(make_app()) as http:
            await http.get("/things/7")
            await http.get("/things/1")
            await http.get("/things/2")
            text = (await http.get("/metrics")).text
        for status in ("200", "409", "500"):
            assert (
                f'stellara_http_requests_total{{method="GET",route="/things/{{thing_id}}",status="{status}"}} 1.0'
                in text
            )
