"""Running a service app in tests: its lifespan (broker, relay, subscribers) and a client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from uuid import UUID

import httpx
from fastapi import FastAPI

from stellara_contracts.events import Role
from stellara_kit.auth import Principal, mint_internal_token


@asynccontextmanager
async def running_app(
    app: FastAPI, base_url: str = "http://testserver"
) -> AsyncIterator[httpx.AsyncClient]:
    """Start the app's lifespan and yield an HTTP client talking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_request(
    app: Any,
    method: str,
    raw_path: bytes,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    client: tuple[str, int] = ("127.0.0.1", 50000),
) -> RawAnswer:
    """Send one request to an ASGI app with the path exactly as given.

    HTTP clients normalise paths before sending (httpx turns ``/a/..`` into ``/``);
    an attacker's client does not, and neither does uvicorn: this speaks ASGI directly.
    """
    path, _, query = raw_path.partition(b"?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(path.decode("latin-1")),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver")]
        + [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()],
        "client": client,
        "server": ("testserver", 80),
        "state": {},
    }
    sent = False
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    return RawAnswer(
        status=start["status"],
        headers={k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]},
        body=b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body"),
    )


def auth_headers(
    settings: Any,
    *,
    role: Role | str = Role.PLATFORM_ADMIN,
    tenant_id: UUID | None = None,
    subject: str = "test-user",
    scopes: frozenset[str] = frozenset(),
    email: str | None = None,
    email_verified: bool | None = None,
) -> dict[str, str]:
    """``Authorization`` header with an internal token, as the gateway would forward it."""
    principal = Principal(
        subject=subject,
        role=Role(role),
        tenant_id=tenant_id,
        scopes=scopes,
        via="internal",
        email=email,
        email_verified=email_verified,
    )
    return {"authorization": f"Bearer {mint_internal_token(settings, principal)}"}
