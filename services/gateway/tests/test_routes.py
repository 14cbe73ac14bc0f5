"""The authorization matrix, generated from the route table (OWASP API1).

Every route × every caller (platform_admin, tenant_admin, user, an API key
with every scope) × own tenant / another tenant / no tenant. What may
succeed does, reaching the owning service with the caller's identity;
everything else is refused before any service is called, and the answer
carries none of the other tenant's data.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.main import create_app
from gateway.routes import ROUTES, Access, Route, Service, TenantContext
from gateway.settings import Settings
from stellara_contracts import topics
from stellara_kit.kafka_admin import delete_topics, ensure_topics
from stellara_kit.testing import Infrastructure, running_app

from .conftest import (
    StandIns,
    Tenants,
    api_key_for,
    gateway_settings,
    new_tenants,
    publish_snapshots,
    user_headers,
    wait_until_ready,
)

CALLERS = ("platform_admin", "tenant_admin", "user", "api_key")
RELATIONS = ("own", "other", "none")
ALL_SCOPES = ["tenant:read", "config:read", "usage:read", "usage:write"]
PATH_VALUES = {
    "key": "billing.hard_limit_action",
    "user_id": "user-42",
    "key_id": str(uuid.UUID(int=7)),
    "invitation_id": str(uuid.UUID(int=9)),
    "token": "inv_token_123",
}


def cases() -> list[Any]:
    out = []
    for route in ROUTES:
        for caller in CALLERS:
            for relation in RELATIONS:
                if caller == "api_key" and relation == "none":
                    continue  # an API key always belongs to a tenant
                out.append(
                    pytest.param(
                        route,
                        caller,
                        relation,
                        id=f"{route.method} {route.path} {caller} {relation}",
                    )
                )
    return out


def allowed(route: Route, caller: str, relation: str) -> bool:
    """The rules of the README, as a table."""
    if caller == "platform_admin":
        return not (route.context is TenantContext.REQUIRED and relation == "none")
    if relation == "other":
        return False  # another tenant's path, or a header naming another tenant
    if relation == "none" and route.context in (TenantContext.PATH, TenantContext.REQUIRED):
        return False  # no tenant of its own (and no default tenant here)
    if caller == "api_key":
        return bool(route.api_key_scopes & set(ALL_SCOPES))
    return {
        Access.PLATFORM: False,
        Access.TENANT_ADMIN: caller == "tenant_admin",
        Access.USAGE_WRITE: caller == "tenant_admin",
        Access.TENANT_READ: True,
        Access.AUTHENTICATED: True,
        Access.INVITEE: True,
    }[route.access]


@dataclass
class World:
    settings: Settings
    tenants: Tenants
    client: httpx.AsyncClient
    downstream: StandIns
    api_key: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(infrastructure: Infrastructure, stand_ins: StandIns) -> AsyncIterator[World]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    names = [f"{prefix}{t}" for t in topics.ALL_TOPICS]
    await ensure_topics(
        infrastructure.kafka_bootstrap,
        names,
        partitions=2,
        compacted={f"{prefix}{t}" for t in topics.COMPACTED_TOPICS},
    )
    tenants = new_tenants()
    await publish_snapshots(infrastructure, prefix, *tenants.all())
    settings = gateway_settings(infrastructure, prefix, stand_ins)
    try:
        async with running_app(create_app(settings)) as client:
            await wait_until_ready(client)
            stand_ins.reset()
            key = api_key_for(stand_ins, tenants.acme.tenant_id, ALL_SCOPES)
            yield World(settings, tenants, client, stand_ins, key)
    finally:
        stand_ins.reset()
        with contextlib.suppress(Exception):
            await delete_topics(infrastructure.kafka_bootstrap, names)


def _request(world: World, route: Route, caller: str, relation: str) -> dict[str, Any]:
    own, other = world.tenants.acme, world.tenants.globex
    target = other if relation == "other" else own
    if caller == "api_key":
        headers = {"x-api-key": world.api_key}
    elif caller == "platform_admin":
        headers = user_headers(world.settings, "platform_admin")
    else:
        tenant = None if relation == "none" else own.tenant_id
        headers = user_headers(world.settings, caller, tenant)
    if route.context is not TenantContext.PATH and relation == "other":
        headers["x-tenant-id"] = other.slug
    if route.context is not TenantContext.PATH and caller == "platform_admin" and relation == "own":
        headers["x-tenant-id"] = own.slug
    values = dict(PATH_VALUES, id=str(target.tenant_id))
    path = route.path.format(**values)
    if route.service is Service.GATEWAY:
        now = datetime.now(UTC).isoformat()
        return {
            "method": route.method,
            "url": path,
            "headers": headers,
            "json": [{"metric": "workflow_runs", "value": 1, "occurred_at": now}],
        }
    body = {} if route.method in ("POST", "PUT", "PATCH") else None
    return {"method": route.method, "url": path, "headers": headers, "json": body}


@pytest.mark.parametrize(("route", "caller", "relation"), cases())
async def test_authorization_matrix(world: World, route: Route, caller: str, relation: str) -> None:
    world.downstream.reset()
    api_key_for(world.downstream, world.tenants.acme.tenant_id, ALL_SCOPES, key=world.api_key)
    request = _request(world, route, caller, relation)

    response = await world.client.request(**request)

    reached = world.downstream.received()
    if allowed(route, caller, relation):
        assert response.status_code < 300, response.text
        if route.service is Service.GATEWAY:
            assert response.json()["accepted"] == 1
            return
        assert len(reached) == 1
        call = reached[0]
        assert response.json()["served_by"] == str(route.service)
        assert call.method == route.method
        assert call.identity is not None, "the internal token did not verify"
        expected_role = "user" if caller == "api_key" else caller
        assert call.identity["role"] == expected_role
        if caller != "platform_admin" and relation == "own":
            assert call.identity["tenant_id"] == str(world.tenants.acme.tenant_id)
        if route.context is TenantContext.PATH:
            target = world.tenants.globex if relation == "other" else world.tenants.acme
            assert call.path.split("/")[2] == str(target.tenant_id)
    else:
        assert response.status_code in (401, 403, 404), response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert reached == [], "a refused request reached a service"
        other = world.tenants.globex
        assert other.name not in response.text
        assert "secret data" not in response.text
        if relation == "other" and route.context is TenantContext.PATH and caller != "api_key":
            # another tenant's object looks exactly like one that does not exist
            assert response.status_code == 404


async def test_anonymous_callers_are_refused_everywhere(world: World) -> None:
    world.downstream.reset()
    for route in ROUTES:
        path = route.path.format(**dict(PATH_VALUES, id=str(world.tenants.acme.tenant_id)))
        response = await world.client.request(route.method, path)
        assert response.status_code == 401, f"{route.method} {route.path}: {response.text}"
        assert "WWW-Authenticate" in response.headers
    assert world.downstream.received() == []
