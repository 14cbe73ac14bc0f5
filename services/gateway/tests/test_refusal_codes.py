"""The gateway refuses with the same problem codes as the services behind it."""

from __future__ import annotations

from uuid import uuid4

import pytest

from gateway.routes import ROUTES, Access
from gateway.tenancy import check_access
from stellara_contracts.events import Role
from stellara_kit.auth import Principal
from stellara_kit.problems import Problem


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
