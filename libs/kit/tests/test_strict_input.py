"""Input no database can store is refused before routing, naming where it was."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from stellara_kit.bounds import INT32_MAX, bounded_int
from stellara_kit.problems import install_problem_handlers
from stellara_kit.strict_input import StrictInputMiddleware, hostile_json


def app() -> FastAPI:
    application = FastAPI()
    install_problem_handlers(application)
    application.add_middleware(StrictInputMiddleware, max_body_bytes=2048)

    @application.post("/items/{name}")
    async def echo(name: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "body": body}

    @application.get("/items")
    async def search(q: str = "") -> dict[str, str]:
        return {"q": q}

    return application


async def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, url, **kwargs)


def locations(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:stellara:problem:validation-error"
    return [e["location"] for e in response.json()["errors"]]


class TestJsonBodies:
    @pytest.mark.parametrize(
        ("body", "where"),
        [
            (b'{"a": NaN}', ["body.a"]),
            (b'{"a": [1, Infinity]}', ["body.a.1"]),
            (b'{"a": {"b": -Infinity}}', ["body.a.b"]),
            (b'{"a": 1e999}', ["body.a"]),
            (b'{"a": "x\\u0000y"}', ["body.a"]),
            (b'{"x\\u0000": 1}', ["body"]),
            (b'{"a": "\\ud800"}', ["body.a"]),
            (b'{"a": 1, "b": [NaN, "\\u0000"]}', ["body.b.0", "body.b.1"]),
            (b'{"a": 1' + b"0" * 400 + b".0}", ["body.a"]),
            (b'{"a": 2.5E+400}', ["body.a"]),
            ('{"a": NaN}'.encode("utf-16"), ["body.a"]),
            ('{"a": "x\\u0000"}'.encode("utf-32-le"), ["body.a"]),
        ],
    )
    def test_what_cannot_be_stored_is_found_where_it_is(
        self, body: bytes, where: list[str]
    ) -> None:
        assert [e["location"] for e in hostile_json(body)] == where

    @pytest.mark.parametrize(
        "body",
        [
            b'{"a": "NaN", "b": "Infinity", "c": "\\\\u0000"}',  # spellings inside strings
            b'{"a": 1e300, "b": 12345678901234567890}',
            b'{"a": "\\ud83d\\ude00"}',  # a surrogate pair is one character
            b"not json at all",
        ],
    )
    def test_storable_or_unparsable_bodies_are_left_to_the_route(self, body: bytes) -> None:
        assert hostile_json(body) == []

    async def test_a_hostile_body_is_a_422_naming_the_field(self) -> None:
        response = await call(
            "POST",
            "/items/x",
            content=b'{"value": NaN}',
            headers={"content-type": "application/json"},
        )
        assert locations(response) == ["body.value"]

    async def test_a_good_body_reaches_the_route_unchanged(self) -> None:
        response = await call("POST", "/items/x", json={"value": "NaN", "n": 1.5})
        assert response.status_code == 200
        assert response.json() == {"name": "x", "body": {"value": "NaN", "n": 1.5}}

    async def test_a_body_past_the_limit_is_a_413(self) -> None:
        response = await call("POST", "/items/x", json={"pad": "x" * 4096})
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["max_bytes"] == 2048


class TestUrlsAndHeaders:
    async def test_nul_in_a_query_parameter(self) -> None:
        assert locations(await call("GET", "/items", params={"q": "a\x00b"})) == ["query.q"]

    async def test_nul_in_a_path_parameter(self) -> None:
        response = await call("POST", "/items/a%00b", json={})
        assert locations(response) == ["path.name"]

    async def test_nul_in_a_header(self) -> None:
        response = await call("GET", "/items", headers={"Idempotency-Key": "a\x00b"})
        assert locations(response) == ["header.idempotency-key"]

    async def test_ordinary_requests_pass(self) -> None:
        response = await call("GET", "/items", params={"q": "100% café"})
        assert response.status_code == 200
        assert response.json() == {"q": "100% café"}


class TestBoundedInt:
    @pytest.mark.parametrize(
        ("text", "value"),
        [("0", 0), ("42", 42), (str(INT32_MAX), INT32_MAX), (str(INT32_MAX + 1), None)],
    )
    def test_within_int32(self, text: str, value: int | None) -> None:
        assert bounded_int(text, INT32_MAX) == value

    @pytest.mark.parametrize("text", ["²", "-1", "1e3", "", "9" * 40, "١٢"])
    def test_not_a_plain_number(self, text: str) -> None:
        assert bounded_int(text) is None
