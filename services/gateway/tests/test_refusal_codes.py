"""The gateway refuses with the same problem codes as the services behind it."""

from __future__ import annotations

from uuid import uuid4

import httpx
import pytest

from gateway.routes import ROUTES, Access
from gateway.settings import Settings
from gateway.tenancy import check_access
from stellara_contracts.events import Role
from stellara_kit.auth import Principal
from stellara_kit.problems import Problem

from .conftest import user_headers


def _code(refuse) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(Problem) as refused:
        refuse()
    return str(refused.value.body()["type"])


def test_needing_platform_admin_is_the_same_refusal_at_the_gateway_and_the_services() -> None:
    route = next(r for r in ROUTES if r.access is Access.PLATFORM and r.method == "POST")
    caller = Principal(subject="u", role=Role.TENANT_ADMIN, tenant_id=uuid4())
    at_gateway = _code(lambda: check_access(route, caller, None, caller.tenant_id))
    at_service = _code(caller.require_platform_admin)
    assert at_gateway == at_service == "urn:stellara:problem:role-required"


def test_an_api_key_without_the_scope_is_insufficient_scope() -> None:
    route = next(r for r in ROUTES if r.access is Access.PLATFORM and r.method == "POST")
    key = Principal(subject="k", role=Role.USER, tenant_id=uuid4(), via="api_key")
    assert _code(lambda: check_access(route, key, None, key.tenant_id)).endswith(
        "insufficient-scope"
    )


async def test_a_catalogue_read_for_an_unknown_tenant_is_a_documented_404(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    headers = user_headers(settings, "tenant_admin", uuid4())
    response = await client.get("/plans", headers=headers)
    assert response.status_code == 404
    assert response.json()["type"].endswith("tenant-not-found")
    document = (await client.get("/openapi.json")).json()
    assert "404" in document["paths"]["/plans"]["get"]["responses"]
