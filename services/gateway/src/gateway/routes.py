"""The route table: every public route, who may call it and which service serves it.

The gateway declares exactly these routes (no catch-all): the authorization
checks, the tests' authorization matrix and the README's route table are
generated from this one table. It holds only what the gateway decides — the
path, the owning service, who may call it, where the tenant comes from. What
a route takes and answers is the owning service's own OpenAPI (copied into
``service_openapi.json`` by ``make docs``); downstream services serve the same
paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Service(StrEnum):
    TENANT = "tenant-svc"
    USAGE = "usage-svc"
    ONBOARDING = "onboarding-svc"
    GATEWAY = "gateway"


class Access(StrEnum):
    """Who may call a route (platform_admin may call every route)."""

    PLATFORM = "platform_admin"
    """platform_admin only."""
    TENANT_ADMIN = "tenant_admin"
    """tenant_admin of the tenant."""
    TENANT_READ = "tenant_read"
    """Any member of the tenant (tenant_admin, user, API key with a read scope)."""
    AUTHENTICATED = "authenticated"
    """Anyone signed in (API keys need a read scope)."""
    USAGE_WRITE = "usage_write"
    """tenant_admin of the tenant, or an API key with `usage:write`."""
    INVITEE = "invitee"
    """Any signed-in person (a user token, not an API key)."""


class TenantContext(StrEnum):
    PATH = "path"
    """The tenant is the path's `{id}` (an id or a slug)."""
    CALLER = "caller"
    """Header, subdomain, token claim or default tenant; none is fine."""
    REQUIRED = "required"
    """As CALLER, but the request needs a tenant."""
    NONE = "none"
    """The route is not about one tenant."""


READ_SCOPES = frozenset({"tenant:read"})
CONFIG_READ_SCOPES = frozenset({"config:read"})
USAGE_READ_SCOPES = frozenset({"usage:read", "tenant:read"})
CATALOGUE_SCOPES = frozenset({"tenant:read", "usage:read", "usage:write"})
USAGE_WRITE_SCOPES = frozenset({"usage:write"})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    service: Service
    access: Access
    context: TenantContext = TenantContext.PATH
    api_key_scopes: frozenset[str] = frozenset()
    """Scopes that let an API key call the route (any one of them); empty: no API keys."""

    @property
    def is_read(self) -> bool:
        return self.method in ("GET", "HEAD")

    @property
    def operation_id(self) -> str:
        """``get_tenants_id_usage_daily`` for ``GET /tenants/{id}/usage/daily``."""
        return f"{self.method.lower()}_" + re.sub(r"[^a-z0-9]+", "_", self.path.lower()).strip("_")

    @property
    def path_parameters(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]

    def roles_text(self) -> str:
        roles = {
            Access.PLATFORM: "platform_admin",
            Access.TENANT_ADMIN: "platform_admin; tenant_admin of the tenant",
            Access.TENANT_READ: "platform_admin; tenant_admin and user of the tenant",
            Access.AUTHENTICATED: "any signed-in caller",
            Access.USAGE_WRITE: "platform_admin (naming the tenant); tenant_admin of the tenant",
            Access.INVITEE: "any signed-in person (not an API key)",
        }[self.access]
        if self.api_key_scopes:
            roles += "; API keys with scope " + " or ".join(
                f"`{x}`" for x in sorted(self.api_key_scopes)
            )
        return roles


T, U, OB = Service.TENANT, Service.USAGE, Service.ONBOARDING

ROUTES: tuple[Route, ...] = (
    # tenants (tenant-svc)
    Route("POST", "/tenants", T, Access.PLATFORM, context=TenantContext.NONE),
    Route("GET", "/tenants", T, Access.PLATFORM, context=TenantContext.NONE),
    Route("GET", "/tenants/{id}", T, Access.TENANT_READ, api_key_scopes=READ_SCOPES),
    Route("PUT", "/tenants/{id}", T, Access.TENANT_ADMIN),
    Route("DELETE", "/tenants/{id}", T, Access.PLATFORM),
    Route("POST", "/tenants/{id}/activate", T, Access.PLATFORM),
    Route("POST", "/tenants/{id}/suspend", T, Access.PLATFORM),
    # configuration (tenant-svc)
    Route("GET", "/tenants/{id}/config", T, Access.TENANT_READ, api_key_scopes=CONFIG_READ_SCOPES),
    Route("POST", "/tenants/{id}/config", T, Access.TENANT_ADMIN),
    Route("PATCH", "/tenants/{id}/config", T, Access.TENANT_ADMIN),
    Route("GET", "/tenants/{id}/config/history", T, Access.TENANT_ADMIN),
    Route("GET", "/tenants/{id}/config/{key}", T, Access.TENANT_READ, api_key_scopes=CONFIG_READ_SCOPES),
    Route("PUT", "/tenants/{id}/config/{key}", T, Access.TENANT_ADMIN),
    Route("DELETE", "/tenants/{id}/config/{key}", T, Access.TENANT_ADMIN),
    Route("POST", "/tenants/{id}/config/{key}/rollback", T, Access.TENANT_ADMIN),
    # members (tenant-svc)
    Route("GET", "/tenants/{id}/members", T, Access.TENANT_ADMIN),
    Route("POST", "/tenants/{id}/members", T, Access.TENANT_ADMIN),
    Route("POST", "/tenants/{id}/members/import", T, Access.TENANT_ADMIN),
    Route("GET", "/tenants/{id}/members/{user_id}", T, Access.TENANT_ADMIN),
    Route("PUT", "/tenants/{id}/members/{user_id}", T, Access.TENANT_ADMIN),
    Route("DELETE", "/tenants/{id}/members/{user_id}", T, Access.TENANT_ADMIN),
    # api-keys (tenant-svc)
    Route("GET", "/tenants/{id}/api-keys", T, Access.TENANT_ADMIN),
    Route("POST", "/tenants/{id}/api-keys", T, Access.TENANT_ADMIN),
    Route("GET", "/tenants/{id}/api-keys/{key_id}", T, Access.TENANT_ADMIN),
    Route("DELETE", "/tenants/{id}/api-keys/{key_id}", T, Access.TENANT_ADMIN),
    # usage (usage-svc)
    Route("GET", "/tenants/{id}/usage", U, Access.TENANT_READ, api_key_scopes=USAGE_READ_SCOPES),
    Route("GET", "/tenants/{id}/usage/daily", U, Access.TENANT_READ, api_key_scopes=USAGE_READ_SCOPES),
    Route("GET", "/tenants/{id}/usage/trends", U, Access.TENANT_READ, api_key_scopes=USAGE_READ_SCOPES),
    Route("GET", "/tenants/{id}/usage/invoice-preview", U, Access.TENANT_ADMIN),
    # catalogue (usage-svc)
    Route("GET", "/plans", U, Access.AUTHENTICATED, context=TenantContext.CALLER, api_key_scopes=CATALOGUE_SCOPES),
    Route("GET", "/meters", U, Access.AUTHENTICATED, context=TenantContext.CALLER, api_key_scopes=CATALOGUE_SCOPES),
    Route("POST", "/meters", U, Access.PLATFORM, context=TenantContext.NONE),
    # usage (gateway)
    Route("POST", "/usage/events", Service.GATEWAY, Access.USAGE_WRITE, context=TenantContext.REQUIRED, api_key_scopes=USAGE_WRITE_SCOPES),
    # onboarding (onboarding-svc)
    Route("POST", "/tenants/{id}/onboard", OB, Access.TENANT_ADMIN),
    Route("POST", "/tenants/{id}/onboard/complete-step", OB, Access.TENANT_ADMIN),
    Route("GET", "/tenants/{id}/onboarding-status", OB, Access.TENANT_READ, api_key_scopes=READ_SCOPES),
    # invitations (onboarding-svc)
    Route("POST", "/tenants/{id}/invitations", OB, Access.TENANT_ADMIN),
    Route("GET", "/tenants/{id}/invitations", OB, Access.TENANT_ADMIN),
    Route("GET", "/tenants/{id}/invitations/{invitation_id}", OB, Access.TENANT_ADMIN),
    Route("POST", "/tenants/{id}/invitations/{invitation_id}/resend", OB, Access.TENANT_ADMIN),
    Route("POST", "/tenants/{id}/invitations/{invitation_id}/revoke", OB, Access.TENANT_ADMIN),
    Route("DELETE", "/tenants/{id}/invitations/{invitation_id}", OB, Access.TENANT_ADMIN),
    Route("POST", "/invitations/{token}/accept", OB, Access.INVITEE, context=TenantContext.NONE),
)  # fmt: skip
