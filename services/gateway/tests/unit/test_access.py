"""Who may call what: the gateway's guard (``tenancy.check_access``), tenant resolution
(``TenantResolver``), and the route table held against an expectation written by hand.

``ACCESS`` below is written from the README's rules, not from ``gateway.routes``: a route
added to the gateway without a decision about who may call it, or whose access changes,
fails ``test_who_may_call_each_route``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from starlette.requests import Request

from gateway.main import create_app
from gateway.routes import ROUTES, Route
from gateway.settings import Settings
from gateway.tenancy import ResolvedTenant, TenantResolver, check_access
from stellara_contracts.events import Role, TenantSnapshot, TenantStatus
from stellara_kit.auth import Principal
from stellara_kit.problems import Problem
from stellara_kit.tenant_directory import TenantDirectory

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

OWN = UUID("77777777-7777-4777-8777-777777777777")
OTHER = UUID("88888888-8888-4888-8888-888888888888")
DEFAULT = UUID("99999999-9999-4999-8999-999999999999")

# ------------------------------------------------------------------ the expectation, by hand
# Who may call each route for their own tenant, besides platform_admin (who may call all):
# "tenant_admin", "user", and API keys by the scope that lets them ("key:<scope>").
ADMIN = {"tenant_admin"}
MEMBERS = {"tenant_admin", "user"}
NOBODY: set[str] = set()  # platform_admin only

ACCESS: dict[str, set[str]] = {
    "POST /tenants": NOBODY,
    "GET /tenants": NOBODY,
    "GET /tenants/{id}": MEMBERS | {"key:tenant:read"},
    "PUT /tenants/{id}": ADMIN,
    "DELETE /tenants/{id}": NOBODY,
    "POST /tenants/{id}/activate": NOBODY,
    "POST /tenants/{id}/suspend": NOBODY,
    "GET /tenants/{id}/config": MEMBERS | {"key:config:read"},
    "POST /tenants/{id}/config": ADMIN,
    "PATCH /tenants/{id}/config": ADMIN,
    "GET /tenants/{id}/config/history": ADMIN,
    "GET /tenants/{id}/config/{key}": MEMBERS | {"key:config:read"},
    "PUT /tenants/{id}/config/{key}": ADMIN,
    "DELETE /tenants/{id}/config/{key}": ADMIN,
    "POST /tenants/{id}/config/{key}/rollback": ADMIN,
    "GET /tenants/{id}/members": ADMIN,
    "POST /tenants/{id}/members": ADMIN,
    "POST /tenants/{id}/members/import": ADMIN,
    "GET /tenants/{id}/members/{user_id}": ADMIN,
    "PUT /tenants/{id}/members/{user_id}": ADMIN,
    "DELETE /tenants/{id}/members/{user_id}": ADMIN,
    "GET /tenants/{id}/api-keys": ADMIN,
    "POST /tenants/{id}/api-keys": ADMIN,
    "GET /tenants/{id}/api-keys/{key_id}": ADMIN,
    "DELETE /tenants/{id}/api-keys/{key_id}": ADMIN,
    "GET /tenants/{id}/usage": MEMBERS | {"key:usage:read", "key:tenant:read"},
    "GET /tenants/{id}/usage/daily": MEMBERS | {"key:usage:read", "key:tenant:read"},
    "GET /tenants/{id}/usage/trends": MEMBERS | {"key:usage:read", "key:tenant:read"},
    "GET /tenants/{id}/usage/invoice-preview": ADMIN,
    "GET /plans": MEMBERS | {"key:tenant:read", "key:usage:read", "key:usage:write"},
    "GET /meters": MEMBERS | {"key:tenant:read", "key:usage:read", "key:usage:write"},
    "POST /meters": NOBODY,
    "POST /usage/events": ADMIN | {"key:usage:write"},
    "POST /tenants/{id}/onboard": ADMIN,
    "POST /tenants/{id}/onboard/complete-step": ADMIN,
    "GET /tenants/{id}/onboarding-status": MEMBERS | {"key:tenant:read"},
    "POST /tenants/{id}/invitations": ADMIN,
    "GET /tenants/{id}/invitations": ADMIN,
    "GET /tenants/{id}/invitations/{invitation_id}": ADMIN,
    "POST /tenants/{id}/invitations/{invitation_id}/resend": ADMIN,
    "POST /tenants/{id}/invitations/{invitation_id}/revoke": ADMIN,
    "DELETE /tenants/{id}/invitations/{invitation_id}": ADMIN,
    "POST /invitations/{token}/accept": MEMBERS,  # any signed-in person, not an API key
}
#: what the gateway serves itself, to anyone, outside the route table
OPERATIONS = {"GET /healthz", "GET /readyz", "GET /metrics", "GET /asyncapi.json"}
SCOPES = ("tenant:read", "config:read", "usage:read", "usage:write")


def snapshot(tenant_id: UUID, status: TenantStatus = TenantStatus.ACTIVE, **extra: Any) -> Any:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "slug": {OWN: "acme", OTHER: "globex", DEFAULT: "default"}.get(tenant_id, "t"),
        "name": "Tenant",
        "plan": "starter",
        "status": status,
        "version": 1,
        "created_at": at,
        "updated_at": at,
        **extra,
    }
    return TenantSnapshot(**values)


def caller(name: str, tenant: UUID | None = OWN) -> Principal:
    if name.startswith("key:"):
        return Principal(
            subject="api-key:1",
            role=Role.USER,
            tenant_id=tenant,
            scopes=frozenset({name[4:]}),
            via="api_key",
        )
    return Principal(subject=name, role=Role(name), tenant_id=tenant)


def outcome(
    route: Route, principal: Principal, tenant: ResolvedTenant | None, caller_tenant: UUID | None
) -> str:
    """ "allowed", or the refusal as a caller sees it: "<status> <problem slug>"."""
    try:
        check_access(route, principal, tenant, caller_tenant)
    except Problem as refused:
        return f"{refused.status} {refused.slug}"
    return "allowed"


def own_tenant(route: Route, status: TenantStatus = TenantStatus.ACTIVE) -> ResolvedTenant | None:
    if route.context == "none":
        return None
    return ResolvedTenant(OWN, snapshot(OWN, status), "path")


def route_of(key: str) -> Route:
    return next(r for r in ROUTES if f"{r.method} {r.path}" == key)


# ------------------------------------------------------------------ the route table
def declared_operations() -> set[str]:
    document = create_app(Settings()).openapi()
    return {f"{method.upper()} {path}" for path, ops in document["paths"].items() for method in ops}


def test_every_route_the_gateway_serves_has_a_decided_access() -> None:
    declared = declared_operations()
    assert declared - OPERATIONS - ACCESS.keys() == set(), "routes nobody decided access for"
    assert ACCESS.keys() - declared == set(), "decided routes the gateway does not serve"
    assert {f"{r.method} {r.path}" for r in ROUTES} == ACCESS.keys()


def callers_of(route: Route) -> set[str]:
    names = ["tenant_admin", "user", *(f"key:{scope}" for scope in SCOPES)]
    return {
        name for name in names if outcome(route, caller(name), own_tenant(route), OWN) == "allowed"
    }


@pytest.mark.parametrize("key", sorted(ACCESS))
def test_who_may_call_each_route(key: str) -> None:
    route = route_of(key)
    assert callers_of(route) == ACCESS[key]
    admin = Principal(subject="operator", role=Role.PLATFORM_ADMIN)
    assert outcome(route, admin, own_tenant(route), None) == "allowed"


# ------------------------------------------------------------------ the guard
TENANT_READ = route_of("GET /tenants/{id}")
TENANT_WRITE = route_of("PUT /tenants/{id}")
PLATFORM = route_of("POST /tenants")
INGEST = route_of("POST /usage/events")
PLANS = route_of("GET /plans")


@pytest.mark.parametrize(
    ("route", "who", "status", "expected"),
    [
        pytest.param(TENANT_READ, "user", TenantStatus.ACTIVE, "allowed", id="active: user reads"),
        pytest.param(
            TENANT_READ, "user", TenantStatus.SUSPENDED, "403 tenant-suspended", id="suspended: user"
        ),
        pytest.param(
            TENANT_WRITE, "tenant_admin", TenantStatus.SUSPENDED, "403 tenant-suspended",
            id="suspended: admin too",
        ),
        pytest.param(
            TENANT_READ, "key:tenant:read", TenantStatus.SUSPENDED, "403 tenant-suspended",
            id="suspended: API key",
        ),
        pytest.param(
            TENANT_WRITE, "tenant_admin", TenantStatus.PENDING, "allowed",
            id="pending: open to its admins (onboarding)",
        ),
        pytest.param(
            TENANT_READ, "user", TenantStatus.PENDING, "403 tenant-pending", id="pending: not users"
        ),
        pytest.param(
            TENANT_READ, "key:tenant:read", TenantStatus.PENDING, "403 tenant-pending",
            id="pending: not API keys",
        ),
        pytest.param(TENANT_READ, "user", TenantStatus.DELETED, "404 tenant-not-found", id="deleted"),
        pytest.param(
            TENANT_WRITE, "user", TenantStatus.ACTIVE, "403 role-required", id="user may not write"
        ),
        pytest.param(
            PLATFORM, "tenant_admin", TenantStatus.ACTIVE, "403 role-required",
            id="platform route",
        ),
        pytest.param(
            TENANT_WRITE, "key:tenant:read", TenantStatus.ACTIVE, "403 insufficient-scope",
            id="API key without the scope",
        ),
        pytest.param(
            INGEST, "key:usage:read", TenantStatus.ACTIVE, "403 insufficient-scope",
            id="reading key may not ingest",
        ),
    ],
)  # fmt: skip
def test_the_guard_on_the_callers_own_tenant(
    route: Route, who: str, status: TenantStatus, expected: str
) -> None:
    assert outcome(route, caller(who), own_tenant(route, status), OWN) == expected


@pytest.mark.parametrize(
    ("route", "who", "tenant", "caller_tenant", "expected"),
    [
        # another tenant's object looks like one that does not exist
        pytest.param(TENANT_READ, "tenant_admin", OTHER, OWN, "404 tenant-not-found", id="admin, other"),
        pytest.param(TENANT_READ, "user", OTHER, OWN, "404 tenant-not-found", id="user, other"),
        # an API key gets the one answer it always gets
        pytest.param(TENANT_READ, "key:tenant:read", OTHER, OWN, "401 unauthorized", id="key, other"),
        pytest.param(TENANT_READ, "user", OWN, None, "404 tenant-not-found", id="caller without tenant"),
        pytest.param(TENANT_READ, "user", "unknown", OWN, "404 tenant-not-found", id="unknown tenant"),
        pytest.param(TENANT_READ, "user", None, OWN, "404 tenant-not-found", id="path route, no tenant"),
        pytest.param(INGEST, "tenant_admin", None, None, "404 tenant-not-found", id="ingest, no tenant"),
        pytest.param(PLANS, "user", None, None, "allowed", id="catalogue, no tenant needed"),
    ],
)  # fmt: skip
def test_the_guard_on_other_or_no_tenants(
    route: Route, who: str, tenant: Any, caller_tenant: UUID | None, expected: str
) -> None:
    resolved = (
        None
        if tenant is None
        else ResolvedTenant(OWN, None, "path")
        if tenant == "unknown"
        else ResolvedTenant(tenant, snapshot(tenant), "path")
    )
    assert outcome(route, caller(who, caller_tenant), resolved, caller_tenant) == expected


def test_a_suspended_tenant_is_told_why() -> None:
    tenant = ResolvedTenant(
        OWN, snapshot(OWN, TenantStatus.SUSPENDED, status_reason="unpaid."), "path"
    )
    with pytest.raises(Problem) as refused:
        check_access(TENANT_READ, caller("user"), tenant, OWN)
    body = refused.value.body()
    assert "suspended: unpaid." in body["detail"]
    assert body["reason"] == "unpaid."


# ------------------------------------------------------------------ tenant resolution
def request(
    route: Route, *, path_id: str | None = None, headers: dict[str, str] | None = None
) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "method": route.method,
        "path": route.path,
        "headers": raw,
        "path_params": {"id": path_id} if path_id is not None else {},
        "query_string": b"",
    }
    return Request(scope)


def resolver(**settings: Any) -> TenantResolver:
    directory = TenantDirectory("unused:9092")
    for tenant_id in (OWN, OTHER, DEFAULT):
        directory.apply(snapshot(tenant_id))
    return TenantResolver(Settings(**settings), directory)


@pytest.mark.parametrize(
    ("route", "who", "path_id", "headers", "expected"),
    [
        pytest.param(TENANT_READ, "user", str(OWN), {}, (OWN, "path"), id="path id"),
        pytest.param(TENANT_READ, "user", "acme", {}, (OWN, "path"), id="path slug"),
        pytest.param(PLANS, "user", None, {"x-tenant-id": "acme"}, (OWN, "header"), id="header slug"),
        pytest.param(PLANS, "user", None, {}, (OWN, "token"), id="the token's tenant"),
        pytest.param(PLANS, "user:none", None, {}, (DEFAULT, "default"), id="the default tenant"),
        pytest.param(PLANS, "platform_admin", None, {}, None, id="platform admin: no tenant"),
        pytest.param(
            PLANS, "platform_admin", None, {"x-tenant-id": "globex"}, (OTHER, "header"),
            id="platform admin names one",
        ),
        pytest.param(PLATFORM, "platform_admin", None, {}, None, id="a route about no tenant"),
        pytest.param(
            TENANT_READ, "user", str(UUID(int=5)), {}, (UUID(int=5), "path"),
            id="an id the directory does not know (yet)",
        ),
        pytest.param(TENANT_READ, "user", "no-such-slug", {}, "404 tenant-not-found", id="unknown slug"),
        pytest.param(
            PLANS, "user", None, {"x-tenant-id": "globex"}, "403 tenant-mismatch",
            id="header names another tenant",
        ),
        pytest.param(
            TENANT_READ, "key:tenant:read", str(OWN), {"x-tenant-id": "globex"}, "401 unauthorized",
            id="API key naming another tenant",
        ),
    ],
)  # fmt: skip
def test_which_tenant_a_request_is_for(
    route: Route, who: str, path_id: str | None, headers: dict[str, str], expected: Any
) -> None:
    tenants = resolver(default_tenant_slug="default")
    principal = (
        caller("user", None)
        if who == "user:none"
        else Principal(subject="op", role=Role.PLATFORM_ADMIN)
        if who == "platform_admin"
        else caller(who)
    )
    caller_tenant = tenants.caller_tenant(principal)
    try:
        resolved = tenants.resolve(
            route, request(route, path_id=path_id, headers=headers), principal, caller_tenant
        )
    except Problem as refused:
        resolved = f"{refused.status} {refused.slug}"
    if isinstance(resolved, ResolvedTenant):
        resolved = (resolved.id, resolved.source)
    assert resolved == expected


@pytest.mark.parametrize(
    ("host", "base_domain", "expected"),
    [
        pytest.param("acme.example.com", None, (OWN, "subdomain"), id="first label"),
        pytest.param("acme.example.com:8443", None, (OWN, "subdomain"), id="with a port"),
        pytest.param("www.example.com", None, (OWN, "token"), id="www is no tenant"),
        pytest.param("example.com", None, (OWN, "token"), id="two labels"),
        pytest.param("10.0.0.1", None, (OWN, "token"), id="an address"),
        pytest.param(
            "acme.api.example.com", "api.example.com", (OWN, "subdomain"), id="base domain"
        ),
        pytest.param("acme.other.com", "api.example.com", (OWN, "token"), id="another domain"),
        pytest.param(
            "a.b.api.example.com", "api.example.com", (OWN, "token"), id="two labels deep"
        ),
    ],
)
def test_a_subdomain_names_the_tenant_when_enabled(
    host: str, base_domain: str | None, expected: tuple[UUID, str]
) -> None:
    tenants = resolver(tenant_subdomain_enabled=True, tenant_base_domain=base_domain)
    principal = caller("user")
    resolved = tenants.resolve(PLANS, request(PLANS, headers={"host": host}), principal, OWN)
    assert resolved is not None
    assert (resolved.id, resolved.source) == expected
