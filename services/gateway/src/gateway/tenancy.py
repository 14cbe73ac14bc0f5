"""Which tenant a request is for, and whether its caller may act on it.

Resolution order: the path's tenant id, the tenant header, the subdomain
(when enabled), the token's tenant claim, then the default tenant for
callers whose token names none. The path and header may carry an id or a
slug. Every lookup is in the in-memory tenant directory (built from the
compacted ``tenant.state`` topic), so this costs no network call.

The guard, in this order:
1. a tenant-bound caller naming another tenant in the header or subdomain
   is refused (403; an API key gets its usual 401);
2. another tenant's path, or an unknown or deleted tenant, is 404 — the
   same answer whether it exists or not, so nothing leaks;
3. a suspended tenant's callers get 403 with the reason; a pending tenant
   is open to its tenant_admins only (for onboarding);
4. the caller's role (or API key scopes) must allow the route.
platform_admin passes every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from fastapi import Request

from gateway.auth import api_key_refused
from gateway.routes import Access, Route, TenantContext
from gateway.settings import Settings
from stellara_contracts.events import Role, TenantSnapshot, TenantStatus
from stellara_kit.auth import Principal
from stellara_kit.problems import (
    Forbidden,
    InsufficientScope,
    NotFound,
    RoleRequired,
    TenantNotFound,
)
from stellara_kit.tenant_directory import TenantDirectory

Source = Literal["path", "header", "subdomain", "token", "default"]


@dataclass(frozen=True, slots=True)
class ResolvedTenant:
    id: UUID
    snapshot: TenantSnapshot | None
    """None when the directory does not know the tenant (yet)."""
    source: Source


def _no_such_tenant() -> NotFound:
    return TenantNotFound("No such tenant.")


class TenantResolver:
    def __init__(self, settings: Settings, directory: TenantDirectory) -> None:
        self.directory = directory
        self.header = settings.tenant_header_name
        self.subdomains = settings.tenant_subdomain_enabled
        self.base_domain = (settings.tenant_base_domain or "").lower().strip(".")
        self.default_slug = settings.default_tenant_slug

    def caller_tenant(self, principal: Principal) -> UUID | None:
        """The tenant a caller belongs to: its token's, else the default tenant's."""
        if principal.tenant_id is not None:
            return principal.tenant_id
        if principal.is_platform_admin:
            return None
        default = self.directory.by_slug(self.default_slug)
        return default.tenant_id if default is not None else None

    def resolve(
        self, route: Route, request: Request, principal: Principal, caller: UUID | None
    ) -> ResolvedTenant | None:
        header_ref = request.headers.get(self.header) or None
        subdomain_ref = self._subdomain(request) if self.subdomains else None
        if not principal.is_platform_admin:
            for ref in (header_ref, subdomain_ref):
                if ref is not None and self._id_of(ref) != caller:
                    if principal.via == "api_key":
                        raise api_key_refused()
                    raise Forbidden(
                        "Your credential is for another tenant than the one this request names.",
                        slug="tenant-mismatch",
                    )

        if route.context is TenantContext.NONE:
            return None
        source: Source
        if route.context is TenantContext.PATH:
            ref, source = request.path_params["id"], "path"
        elif header_ref is not None:
            ref, source = header_ref, "header"
        elif subdomain_ref is not None:
            ref, source = subdomain_ref, "subdomain"
        elif principal.tenant_id is not None:
            ref, source = str(principal.tenant_id), "token"
        elif caller is not None:
            ref, source = str(caller), "default"
        else:
            return None

        snapshot = self.directory.resolve(ref)
        if snapshot is not None:
            return ResolvedTenant(snapshot.tenant_id, snapshot, source)
        try:
            return ResolvedTenant(UUID(ref), None, source)
        except ValueError:
            raise _no_such_tenant() from None

    def _id_of(self, ref: str) -> UUID | None:
        snapshot = self.directory.resolve(ref)
        if snapshot is not None:
            return snapshot.tenant_id
        try:
            return UUID(ref)
        except ValueError:
            return None

    def _subdomain(self, request: Request) -> str | None:
        host = (request.headers.get("host") or "").split(":", 1)[0].lower().rstrip(".")
        if not host:
            return None
        if self.base_domain:
            if not host.endswith("." + self.base_domain):
                return None
            label = host[: -len(self.base_domain) - 1]
            return label if label and "." not in label else None
        labels = host.split(".")
        if len(labels) < 3 or labels[0] == "www" or host.replace(".", "").isdigit():
            return None
        return labels[0]


def check_access(
    route: Route, principal: Principal, tenant: ResolvedTenant | None, caller: UUID | None
) -> None:
    """Refuse the request unless the caller may call ``route`` for ``tenant``."""
    if principal.is_platform_admin:
        return
    api_key = principal.via == "api_key"
    if tenant is not None:
        if tenant.id != caller:
            if api_key:
                raise api_key_refused()
            raise _no_such_tenant()
        snapshot = tenant.snapshot
        if snapshot is None or snapshot.status == TenantStatus.DELETED:
            raise _no_such_tenant()
        if snapshot.status == TenantStatus.SUSPENDED:
            reason = (snapshot.status_reason or "no reason was given").rstrip(". ")
            raise Forbidden(
                f"The tenant is suspended: {reason}. Ask a platform administrator to reactivate it.",
                slug="tenant-suspended",
                title="Tenant suspended",
                reason=snapshot.status_reason,
            )
        if snapshot.status == TenantStatus.PENDING and (
            api_key or principal.role != Role.TENANT_ADMIN
        ):
            raise Forbidden(
                "The tenant is not active yet: only its administrators can use it until "
                "onboarding completes.",
                slug="tenant-pending",
                title="Tenant not active yet",
            )
    elif route.context in (TenantContext.PATH, TenantContext.REQUIRED):
        raise NotFound(
            "No tenant: name it in the path or with the tenant header.", slug="tenant-not-found"
        )

    if api_key:
        if not principal.scopes & route.api_key_scopes:
            needed = " or ".join(sorted(route.api_key_scopes)) or "a user token"
            raise InsufficientScope(
                f"This API key cannot call this route: it needs {needed}.",
                required_scope=sorted(route.api_key_scopes),
            )
        return
    if route.access is Access.PLATFORM:
        raise RoleRequired("This needs the platform_admin role.")
    if route.access in (Access.TENANT_ADMIN, Access.USAGE_WRITE) and (
        principal.role != Role.TENANT_ADMIN
    ):
        raise RoleRequired("This needs the tenant_admin role for this tenant.")
