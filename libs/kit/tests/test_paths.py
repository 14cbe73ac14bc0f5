"""Ambiguous request paths are refused before routing, in every service app."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from stellara_kit.paths import path_refusal
from stellara_kit.runtime import ServiceRuntime
from stellara_kit.settings import ServiceSettings
from stellara_kit.testing import raw_request

REFUSED = [
    "/things/..",
    "/things/1/..",
    "/things/.",
    "/things/./1",
    "/things/%2e%2e",
    "/things/%2E%2E",
    "/things/.%2e",
    "/things/%2e",
    "/things/%2E",
    "/things/1%2e",
    "/things/1%2f..",
    "/things/1%2F2",
    "/things/1%5c..",
    "/things/1%5C2",
    "/things/%252e%252e",
    "/things/%25",
    "/things//1",
    "//things/1",
    "/things/1/",
    "/things/1\\..",
    "/things/1%0a",
    "/things/1\t",
]


def service_app() -> tuple[FastAPI, list[str]]:
    reached: list[str] = []
    app = ServiceRuntime(
        ServiceSettings(service_name="paths-test"), with_database=False, configure_logs=False
    ).create_app(title="paths")

    @app.get("/things/{thing_id}")
    async def get_thing(thing_id: str) -> dict[str, str]:
        reached.append(thing_id)
        return {"id": thing_id}

    @app.get("/things")
    async def list_things() -> list[str]:
        reached.append("list")
        return []

    return app, reached


async def test_a_nul_in_a_path_is_refused_before_routing_naming_its_parameter() -> None:
    app, reached = service_app()

    answer = await raw_request(app, "GET", b"/things/1%00")

    assert answer.status == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["location"] for e in answer.json()["errors"]] == ["path.thing_id"]
    assert reached == []


@pytest.mark.parametrize("path", REFUSED)
async def test_an_ambiguous_path_is_refused_before_routing(path: str) -> None:
    app, reached = service_app()

    answer = await raw_request(app, "GET", path.encode("latin-1"))

    assert answer.status == 400
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["type"] == "urn:stellara:problem:bad-path"
    assert "instance" not in body and path not in body["detail"]
    assert answer.headers["x-request-id"]
    assert reached == []


@pytest.mark.parametrize(
    "path", ["/things/1", "/things/billing.hard_limit_action", "/things/a%20b", "/things/%C3%BC"]
)
async def test_ordinary_paths_pass(path: str) -> None:
    app, reached = service_app()

    answer = await raw_request(app, "GET", path.encode("latin-1"))

    assert answer.status == 200, answer.body
    assert len(reached) == 1


def test_the_root_path_is_fine() -> None:
    assert path_refusal("/") is None
    assert path_refusal("") is not None


class TestDocumented:
    def test_path_parameters_say_what_the_guard_lets_through(self) -> None:
        import re

        from fastapi import FastAPI

        from stellara_kit.paths import PATH_PARAMETER_PATTERN, document_path_rules, path_refusal

        app = FastAPI()

        @app.get("/things/{name}")
        async def thing(name: str) -> str:
            return name

        document = document_path_rules(app.openapi())
        operation = document["paths"]["/things/{name}"]["get"]
        (parameter,) = operation["parameters"]
        assert parameter["schema"]["pattern"] == PATH_PARAMETER_PATTERN
        assert "400" in operation["responses"]
        pattern = re.compile(PATH_PARAMETER_PATTERN)
        from urllib.parse import quote

        for value in ("acme", "ada@acme.example", "x..y", "..", ".", "a/b", "a%b", "a\\b", "a\x01"):
            allowed = pattern.match(value) is not None
            assert allowed == (path_refusal(f"/things/{quote(value, safe='')}") is None), value
