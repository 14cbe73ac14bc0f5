"""The route table: every public route, who may call it and which service serves it.

The gateway declares exactly these routes (no catch-all): the OpenAPI
document, the authorization checks and the tests' authorization matrix are
all generated from this one table. Downstream services serve the same paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from gateway import schemas as s


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
class QueryParam:
    name: str
    description: str
    example: str


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    service: Service
    access: Access
    summary: str
    tag: str
    context: TenantContext = TenantContext.PATH
    api_key_scopes: frozenset[str] = frozenset()
    """Scopes that let an API key call the route (any one of them); empty: no API keys."""
    request_model: type[BaseModel] | None = None
    response_model: type[BaseModel] | None = None
    status_code: int = 200
    response_example: Any = None
    query: tuple[QueryParam, ...] = ()
    description: str = ""
    path_examples: dict[str, str] = field(default_factory=dict)

    @property
    def is_read(self) -> bool:
        return self.method in ("GET", "HEAD")

    @property
    def operation_id(self) -> str:
        """``get_tenants_id_usage_daily`` for ``GET /tenants/{id}/usage/daily``."""
        return f"{self.method.lower()}_" + re.sub(r"[^a-z0-9]+", "_", self.path.lower()).strip("_")

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


_PAGE = (
    QueryParam("cursor", "Cursor of the next page (from `next_cursor`).", ""),
    QueryParam("limit", "Items per page (bounded by the service).", "50"),
)
_RANGE = (
    QueryParam("metric", "Only this metric.", "api_calls"),
    QueryParam("from", "First day (inclusive, ISO date).", "2026-12-01"),
    QueryParam("to", "Last day (exclusive, ISO date).", "2027-01-01"),
)

_TENANT_EXAMPLE = {
    "id": s.TENANT,
    "slug": "acme",
    "name": "Acme Corp",
    "plan": "starter",
    "status": "active",
    "status_reason": None,
    "metadata": {"region": "eu"},
    "version": 3,
    "allowed_transitions": ["suspended", "deleted"],
    "created_at": s.WHEN,
    "updated_at": s.WHEN,
    "deleted_at": None,
}
_ENTRY_EXAMPLE = {
    "category": "billing",
    "key": "hard_limit_action",
    "value": "suspend",
    "source": "tenant",
    "version": 2,
    "updated_at": s.WHEN,
    "updated_by": s.USER,
}
_CONFIG_EXAMPLE = {
    "tenant_id": s.TENANT,
    "effective": True,
    "values": {"billing": {"hard_limit_action": "suspend"}, "general": {"timezone": "UTC"}},
    "items": [
        _ENTRY_EXAMPLE,
        {
            "category": "general",
            "key": "timezone",
            "value": "UTC",
            "source": "default",
            "version": None,
            "updated_at": None,
            "updated_by": None,
        },
    ],
}
_CHANGE_EXAMPLE = {
    "category": "billing",
    "key": "hard_limit_action",
    "action": "set",
    "old_value": "notify",
    "new_value": "suspend",
    "version": 2,
}
_HISTORY_EXAMPLE = {
    "items": [
        {
            "id": 17,
            "category": "billing",
            "key": "hard_limit_action",
            "version": 2,
            "action": "set",
            "old_value": "notify",
            "new_value": "suspend",
            "changed_by": s.USER,
            "changed_at": s.WHEN,
        }
    ],
    "next_cursor": None,
}
_MEMBER_EXAMPLE = {
    "user_id": s.USER,
    "email": "ada@acme.example",
    "role": "user",
    "via": "api",
    "created_at": s.WHEN,
    "updated_at": s.WHEN,
}
_API_KEY_EXAMPLE = {
    "id": s.API_KEY,
    "tenant_id": s.TENANT,
    "name": "billing-worker",
    "prefix": "sk_3e2d",
    "scopes": ["usage:write"],
    "created_at": s.WHEN,
    "created_by": s.USER,
    "expires_at": None,
    "revoked_at": None,
}
_USAGE_EXAMPLE = {
    "tenant_id": s.TENANT,
    "plan": "starter",
    "period_start": "2026-12-01",
    "period_end": "2027-01-01",
    "metrics": [{"metric": "api_calls", "value": 80012, "limit": 100000, "percent_of_limit": 80.0}],
}
_DAILY_EXAMPLE = {
    "tenant_id": s.TENANT,
    "items": [{"day": "2026-12-01", "metric": "api_calls", "value": 2710}],
}
_TRENDS_EXAMPLE = {
    "tenant_id": s.TENANT,
    "metric": "api_calls",
    "granularity": "month",
    "points": [{"period_start": "2026-11-01", "value": 71200, "change_percent": 12.5}],
}
_INVOICE_EXAMPLE = {
    "tenant_id": s.TENANT,
    "plan": "starter",
    "period_start": "2026-12-01",
    "period_end": "2027-01-01",
    "currency": "USD",
    "base_fee": "49.00",
    "line_items": [
        {
            "metric": "api_calls",
            "quantity": "120000",
            "included": "100000",
            "overage": "20000",
            "unit_price": "0.0002",
            "amount": "4.00",
        }
    ],
    "total": "53.00",
}
_PLAN_EXAMPLE = {
    "key": "starter",
    "name": "Starter",
    "currency": "USD",
    "base_fee": "49.00",
    "limits": {"api_calls": 100000},
    "hard_limits": False,
}
_METER_EXAMPLE = {
    "key": "workflow_runs",
    "name": "Workflow runs",
    "unit": "run",
    "aggregation": "sum",
}
_ONBOARDING_EXAMPLE = {
    "tenant_id": s.TENANT,
    "workflow_id": s.WORKFLOW,
    "status": "running",
    "percent_complete": 33,
    "next_steps": ["configure_tenant"],
    "steps": [
        {
            "key": "invite_admin",
            "title": "Invite an administrator",
            "required": True,
            "status": "completed",
            "completed_at": s.WHEN,
        },
        {
            "key": "configure_tenant",
            "title": "Configure the tenant",
            "required": True,
            "status": "in_progress",
            "completed_at": None,
        },
    ],
}
_INVITATION_EXAMPLE = {
    "id": s.INVITATION,
    "tenant_id": s.TENANT,
    "email": "ada@acme.example",
    "role": "tenant_admin",
    "status": "pending",
    "created_at": s.WHEN,
    "expires_at": "2026-12-08T10:00:00Z",
}

T, U, OB = Service.TENANT, Service.USAGE, Service.ONBOARDING

ROUTES: tuple[Route, ...] = (
    # ------------------------------------------------------------------ tenants (tenant-svc)
    Route("POST", "/tenants", T, Access.PLATFORM, "Create a tenant", "tenants",
          context=TenantContext.NONE, request_model=s.TenantCreate, response_model=s.Tenant,
          status_code=201, response_example=_TENANT_EXAMPLE | {"status": "pending", "version": 1}),
    Route("GET", "/tenants", T, Access.PLATFORM, "List tenants", "tenants",
          context=TenantContext.NONE, response_model=s.TenantPage,
          response_example={"items": [_TENANT_EXAMPLE], "next_cursor": None},
          query=(*_PAGE, QueryParam("status", "Only tenants in this status.", "active"))),
    Route("GET", "/tenants/{id}", T, Access.TENANT_READ, "Get a tenant", "tenants",
          api_key_scopes=READ_SCOPES, response_model=s.Tenant, response_example=_TENANT_EXAMPLE),
    Route("PUT", "/tenants/{id}", T, Access.TENANT_ADMIN, "Update a tenant", "tenants",
          request_model=s.TenantUpdate, response_model=s.Tenant, response_example=_TENANT_EXAMPLE),
    Route("DELETE", "/tenants/{id}", T, Access.PLATFORM, "Delete a tenant", "tenants",
          response_model=s.Tenant, response_example=_TENANT_EXAMPLE | {"status": "deleted"}),
    Route("POST", "/tenants/{id}/activate", T, Access.PLATFORM, "Activate a tenant", "tenants",
          response_model=s.Tenant, response_example=_TENANT_EXAMPLE),
    Route("POST", "/tenants/{id}/suspend", T, Access.PLATFORM, "Suspend a tenant", "tenants",
          request_model=s.SuspendRequest, response_model=s.Tenant,
          response_example=_TENANT_EXAMPLE | {"status": "suspended", "status_reason": "Unpaid invoice 2026-11"}),
    # ------------------------------------------------------------------ configuration (tenant-svc)
    Route("GET", "/tenants/{id}/config", T, Access.TENANT_READ, "Get a tenant's configuration", "configuration",
          api_key_scopes=CONFIG_READ_SCOPES, response_model=s.TenantConfig, response_example=_CONFIG_EXAMPLE,
          query=(QueryParam("category", "Only this category.", "billing"),
                 QueryParam("effective", "Merge in the platform defaults (`true`, the default).", "true"))),
    Route("POST", "/tenants/{id}/config", T, Access.TENANT_ADMIN, "Set one configuration key", "configuration",
          request_model=s.ConfigSet, response_model=s.ConfigEntry, status_code=201, response_example=_ENTRY_EXAMPLE),
    Route("PATCH", "/tenants/{id}/config", T, Access.TENANT_ADMIN, "Change many configuration keys at once", "configuration",
          request_model=s.ConfigBulk, response_model=s.ConfigChanges, response_example={"changes": [_CHANGE_EXAMPLE]}),
    Route("GET", "/tenants/{id}/config/history", T, Access.TENANT_ADMIN, "Configuration history", "configuration",
          response_model=s.ConfigHistoryPage, response_example=_HISTORY_EXAMPLE,
          query=(QueryParam("category", "Only this category.", "billing"),
                 QueryParam("key", "Only this key.", "hard_limit_action"), *_PAGE)),
    Route("GET", "/tenants/{id}/config/{key}", T, Access.TENANT_READ, "Get one configuration key", "configuration",
          api_key_scopes=CONFIG_READ_SCOPES, response_model=s.ConfigEntry, response_example=_ENTRY_EXAMPLE,
          path_examples={"key": "billing.hard_limit_action"}),
    Route("PUT", "/tenants/{id}/config/{key}", T, Access.TENANT_ADMIN, "Update one configuration key", "configuration",
          request_model=s.ConfigValue, response_model=s.ConfigEntry, response_example=_ENTRY_EXAMPLE,
          path_examples={"key": "billing.hard_limit_action"}),
    Route("DELETE", "/tenants/{id}/config/{key}", T, Access.TENANT_ADMIN, "Delete one configuration key (back to the default)", "configuration",
          status_code=204, path_examples={"key": "billing.hard_limit_action"}),
    Route("POST", "/tenants/{id}/config/{key}/rollback", T, Access.TENANT_ADMIN, "Roll a configuration key back", "configuration",
          request_model=s.ConfigRollback, response_model=s.ConfigEntry,
          response_example=_ENTRY_EXAMPLE | {"value": "notify", "version": 3},
          path_examples={"key": "billing.hard_limit_action"}),
    # ------------------------------------------------------------------ members (tenant-svc)
    Route("GET", "/tenants/{id}/members", T, Access.TENANT_ADMIN, "List members", "members",
          response_model=s.MemberPage, response_example={"items": [_MEMBER_EXAMPLE], "next_cursor": None},
          query=(QueryParam("role", "Only this role.", "tenant_admin"), *_PAGE)),
    Route("POST", "/tenants/{id}/members", T, Access.TENANT_ADMIN, "Add a member", "members",
          request_model=s.MemberIn, response_model=s.Member, status_code=201, response_example=_MEMBER_EXAMPLE),
    Route("POST", "/tenants/{id}/members/import", T, Access.TENANT_ADMIN, "Import users as members", "members",
          request_model=s.MemberImport, response_model=s.ImportReport,
          response_example={"created": 1, "skipped": 0, "invalid": 0,
                            "results": [{"line": 1, "outcome": "created", "user_id": s.USER,
                                         "email": "ada@acme.example", "role": "user", "reason": None}]}),
    Route("GET", "/tenants/{id}/members/{user_id}", T, Access.TENANT_ADMIN, "Get a member", "members",
          response_model=s.Member, response_example=_MEMBER_EXAMPLE, path_examples={"user_id": s.USER}),
    Route("PUT", "/tenants/{id}/members/{user_id}", T, Access.TENANT_ADMIN, "Change a member's role", "members",
          request_model=s.MemberRoleUpdate, response_model=s.Member,
          response_example=_MEMBER_EXAMPLE | {"role": "tenant_admin"}, path_examples={"user_id": s.USER}),
    Route("DELETE", "/tenants/{id}/members/{user_id}", T, Access.TENANT_ADMIN, "Remove a member", "members",
          status_code=204, path_examples={"user_id": s.USER}),
    # ------------------------------------------------------------------ API keys (tenant-svc)
    Route("GET", "/tenants/{id}/api-keys", T, Access.TENANT_ADMIN, "List API keys", "api-keys",
          response_model=s.ApiKeyPage, response_example={"items": [_API_KEY_EXAMPLE], "next_cursor": None},
          query=_PAGE),
    Route("POST", "/tenants/{id}/api-keys", T, Access.TENANT_ADMIN, "Create an API key (its secret is shown once)", "api-keys",
          request_model=s.ApiKeyCreate, response_model=s.ApiKeyCreated, status_code=201,
          response_example=_API_KEY_EXAMPLE | {"secret": "sk_3e2d1c0b_9f8e7d6c5b4a39281706f5e4d3c2b1a0"}),
    Route("GET", "/tenants/{id}/api-keys/{key_id}", T, Access.TENANT_ADMIN, "Get an API key", "api-keys",
          response_model=s.ApiKey, response_example=_API_KEY_EXAMPLE, path_examples={"key_id": s.API_KEY}),
    Route("DELETE", "/tenants/{id}/api-keys/{key_id}", T, Access.TENANT_ADMIN, "Revoke an API key", "api-keys",
          response_model=s.ApiKey, response_example=_API_KEY_EXAMPLE, path_examples={"key_id": s.API_KEY}),
    # ------------------------------------------------------------------ usage (usage-svc)
    Route("GET", "/tenants/{id}/usage", U, Access.TENANT_READ, "Usage in the current billing period", "usage",
          api_key_scopes=USAGE_READ_SCOPES, response_model=s.UsageSummary, response_example=_USAGE_EXAMPLE,
          query=(QueryParam("metric", "Only this metric.", "api_calls"),)),
    Route("GET", "/tenants/{id}/usage/daily", U, Access.TENANT_READ, "Daily usage", "usage",
          api_key_scopes=USAGE_READ_SCOPES, response_model=s.DailyUsage, response_example=_DAILY_EXAMPLE,
          query=_RANGE),
    Route("GET", "/tenants/{id}/usage/trends", U, Access.TENANT_READ, "Usage trends", "usage",
          api_key_scopes=USAGE_READ_SCOPES, response_model=s.UsageTrends, response_example=_TRENDS_EXAMPLE,
          query=(QueryParam("metric", "The metric.", "api_calls"),
                 QueryParam("period", "`7d` or `30d`: this period against the one before.", "7d"))),
    Route("GET", "/tenants/{id}/usage/invoice-preview", U, Access.TENANT_ADMIN, "Invoice preview of the current billing period", "usage",
          response_model=s.InvoicePreview, response_example=_INVOICE_EXAMPLE),
    Route("GET", "/plans", U, Access.AUTHENTICATED, "List plans", "catalogue",
          context=TenantContext.CALLER, api_key_scopes=CATALOGUE_SCOPES, response_model=s.PlanList,
          response_example={"items": [_PLAN_EXAMPLE]}),
    Route("GET", "/meters", U, Access.AUTHENTICATED, "List meters", "catalogue",
          context=TenantContext.CALLER, api_key_scopes=CATALOGUE_SCOPES, response_model=s.MeterList,
          response_example={"items": [_METER_EXAMPLE]}),
    Route("POST", "/meters", U, Access.PLATFORM, "Create a meter", "catalogue",
          context=TenantContext.NONE, request_model=s.MeterIn, response_model=s.Meter, status_code=201,
          response_example=_METER_EXAMPLE),
    # ------------------------------------------------------------------ usage ingestion (gateway)
    Route("POST", "/usage/events", Service.GATEWAY, Access.USAGE_WRITE, "Send usage events", "usage",
          context=TenantContext.REQUIRED, api_key_scopes=USAGE_WRITE_SCOPES,
          response_model=s.IngestionResult, status_code=202,
          response_example={"accepted": 2, "rejected": 1, "ids": [s.EVENT, s.WORKFLOW],
                            "errors": [{"index": 1, "errors": ["value: Input should be a valid number"]}]},
          description=(
              "A JSON array of events (`application/json`, up to the batch limit), NDJSON "
              "(`application/x-ndjson`, one event a line) or full CloudEvents "
              "(`application/cloudevents-batch+json`). The tenant is the caller's: an API key's "
              "or the token's tenant (a platform_admin names it with the tenant header). "
              "Answered 202 once Kafka acknowledged every accepted event; invalid events are "
              "reported by index and the valid ones accepted.")),
    # ------------------------------------------------------------------ onboarding (onboarding-svc)
    Route("POST", "/tenants/{id}/onboard", OB, Access.TENANT_ADMIN, "Start onboarding", "onboarding",
          request_model=s.OnboardRequest, response_model=s.OnboardingStatus, status_code=201,
          response_example=_ONBOARDING_EXAMPLE),
    Route("POST", "/tenants/{id}/onboard/complete-step", OB, Access.TENANT_ADMIN, "Complete an onboarding step", "onboarding",
          request_model=s.CompleteStep, response_model=s.OnboardingStatus, response_example=_ONBOARDING_EXAMPLE),
    Route("GET", "/tenants/{id}/onboarding-status", OB, Access.TENANT_READ, "Onboarding status", "onboarding",
          api_key_scopes=READ_SCOPES, response_model=s.OnboardingStatus, response_example=_ONBOARDING_EXAMPLE),
    Route("POST", "/tenants/{id}/invitations", OB, Access.TENANT_ADMIN, "Invite someone", "invitations",
          request_model=s.InvitationIn, response_model=s.Invitation, status_code=201,
          response_example=_INVITATION_EXAMPLE),
    Route("GET", "/tenants/{id}/invitations", OB, Access.TENANT_ADMIN, "List invitations", "invitations",
          response_model=s.InvitationPage, response_example={"items": [_INVITATION_EXAMPLE], "next_cursor": None},
          query=(*_PAGE, QueryParam("status", "Only invitations in this status.", "pending"))),
    Route("GET", "/tenants/{id}/invitations/{invitation_id}", OB, Access.TENANT_ADMIN, "Get an invitation", "invitations",
          response_model=s.Invitation, response_example=_INVITATION_EXAMPLE,
          path_examples={"invitation_id": s.INVITATION}),
    Route("POST", "/tenants/{id}/invitations/{invitation_id}/resend", OB, Access.TENANT_ADMIN, "Send an invitation again", "invitations",
          response_model=s.Invitation, response_example=_INVITATION_EXAMPLE,
          path_examples={"invitation_id": s.INVITATION}),
    Route("POST", "/tenants/{id}/invitations/{invitation_id}/revoke", OB, Access.TENANT_ADMIN, "Revoke an invitation", "invitations",
          response_model=s.Invitation, response_example=_INVITATION_EXAMPLE | {"status": "revoked"},
          path_examples={"invitation_id": s.INVITATION}),
    Route("DELETE", "/tenants/{id}/invitations/{invitation_id}", OB, Access.TENANT_ADMIN, "Revoke an invitation", "invitations",
          response_model=s.Invitation, response_example=_INVITATION_EXAMPLE | {"status": "revoked"},
          path_examples={"invitation_id": s.INVITATION}),
    Route("POST", "/invitations/{token}/accept", OB, Access.INVITEE, "Accept an invitation", "invitations",
          context=TenantContext.NONE, response_model=s.AcceptedInvitation,
          response_example={"invitation_id": s.INVITATION, "tenant_id": s.TENANT, "role": "tenant_admin"},
          path_examples={"token": "inv_q2Wd9xLk3VbP0sRt"},
          description="The caller (signed in with a user token) joins the invitation's tenant "
          "with the invited role."),
)  # fmt: skip
