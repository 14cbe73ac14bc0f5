"""Running a service app in tests: its lifespan (broker, relay, subscribers) and a client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
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
