"""What a client gets when a handler fails: 503 for a lost database, 500 for anything else."""

from __future__ import annotations

import asyncpg
import httpx
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from stellara_kit.problems import install_problem_handlers


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/lost")
    async def lost() -> None:
        # what SQLAlchemy raises when asyncpg loses the connection mid-statement
        raise DBAPIError(
            "INSERT ...", None, asyncpg.ConnectionDoesNotExistError("connection was closed")
        )

    @app.post("/refused")
    async def refused() -> None:
        raise ConnectionError("unexpected connection_lost() call")

    @app.post("/crashed")
    async def crashed() -> None:
        try:
            raise asyncpg.exceptions.CrashShutdownError("terminating connection")
        except asyncpg.PostgresError as exc:
            raise RuntimeError("flush failed") from exc

    @app.post("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    return app


async def test_a_lost_database_is_a_503_to_retry_with_the_same_key() -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path in ("/lost", "/refused", "/crashed"):
            response = await client.post(path)
            assert response.status_code == 503, path
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers["retry-after"] == "1"
            body = response.json()
            assert body["type"] == "urn:stellara:problem:database-unavailable"
            assert "may or may not have taken effect" in body["detail"]
            assert "same Idempotency-Key" in body["detail"]


async def test_anything_else_is_still_a_500() -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/bug")
    assert response.status_code == 500
    assert response.json()["type"] == "urn:stellara:problem:internal-error"
