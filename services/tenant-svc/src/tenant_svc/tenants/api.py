"""Tenant routes: create, list, read, update, lifecycle."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from stellara_contracts.events import TenantStatus
from stellara_kit.auth import CurrentPrincipal
from stellara_kit.pagination import (
    Page,
    cursor_instant,
    cursor_uuid,
    decode_cursor,
    next_page,
)
from stellara_kit.problems import problem_responses
from tenant_svc.deps import (
    Cursor,
    IdempotencyKey,
    IfMatch,
    Parts,
    TenantRef,
    etag_of,
    expected_version,
    require_scope,
)
from tenant_svc.errors import TenantNotFound
from tenant_svc.tenants import repository, service
from tenant_svc.tenants.schemas import (
    ReceivedEventOut,
    SuspendRequest,
    TenantCreate,
    TenantOut,
    TenantUpdate,
)

router = APIRouter(tags=["tenants"])


#: OpenAPI of the ETag answer header (a tenant's or a configuration key's version)
ETAG_HEADER: dict[str, Any] = {
    "ETag": {
        "description": "The version, quoted; send it back as `If-Match`.",
        "schema": {"type": "string", "examples": ['"3"']},
    }
}
_TENANT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The tenant; `ETag` carries its version.",
        "model": TenantOut,
        "headers": ETAG_HEADER,
    },
}


def tenant_response(tenant: Any, status_code: int = 200, **headers: str) -> JSONResponse:
    body = TenantOut.of(tenant).model_dump(mode="json")
    return JSONResponse(
        body, status_code=status_code, headers={"ETag": etag_of(tenant.version), **headers}
    )


@router.post(
    "/tenants",
    status_code=201,
    response_model=TenantOut,
    summary="Create a tenant",
    responses={
        201: {
            "description": "The new tenant; `Location` is its URL, `ETag` its version.",
            "headers": {
                "Location": {
                    "description": "The tenant's path, `/tenants/{id}`.",
                    "schema": {"type": "string"},
                },
                **ETAG_HEADER,
            },
        },
        **problem_responses(400, 401, 403, 409, 422),
    },
)
async def create_tenant(
    body: TenantCreate,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create a tenant; it starts `pending`. Platform admins only.

    A taken slug (also one of a deleted tenant) is a 409; a reserved or malformed
    slug, an unknown plan or oversized metadata is a 422.
    Emits TenantCreated on `tenant.events` and a TenantSnapshot on `tenant.state`.
    """
    principal.require_platform_admin()
    tenant_id = uuid4()
    async with parts.db.transaction(tenant_id) as session:

        async def produce() -> Response:
            tenant = await service.create_tenant(
                session,
                parts.sink,
                parts.settings,
                tenant_id=tenant_id,
                name=body.name,
                slug=body.slug,
                plan=body.plan,
                metadata=body.metadata,
            )
            return tenant_response(tenant, 201, Location=f"/tenants/{tenant.id}")

        return await parts.write(session, request, principal, produce)


@router.get(
    "/tenants",
    response_model=Page[TenantOut],
    summary="List tenants",
    responses=problem_responses(400, 401, 403),
)
async def list_tenants(
    principal: CurrentPrincipal,
    parts: Parts,
    status: Annotated[
        list[TenantStatus] | None,
        Query(description="Only these statuses (repeatable); deleted tenants only when asked."),
    ] = None,
    plan: Annotated[str | None, Query(description="Only this plan.", max_length=100)] = None,
    q: Annotated[
        str | None,
        Query(description="Text search in name and slug (case-insensitive).", max_length=100),
    ] = None,
    cursor: Cursor = None,
    limit: Annotated[
        int | None, Query(ge=1, le=1000, description="Page size (at most the configured maximum).")
    ] = None,
) -> Page[TenantOut]:
    """Every tenant, oldest first (stable across pages). Platform admins only."""
    principal.require_platform_admin()
    size = min(limit or parts.settings.page_size_default, parts.settings.page_size_max)
    after = None
    if cursor:
        created, tenant_id = decode_cursor(cursor, 2)
        after = (cursor_instant(created), cursor_uuid(tenant_id))
    async with parts.db.system_transaction() as session:
        rows = await repository.list_page(
            session,
            statuses=[str(s) for s in status] if status else None,
            plan=plan,
            text=q,
            after=after,
            limit=size + 1,
        )
    rows, next_cursor = next_page(rows, size, lambda t: (t.created_at.isoformat(), t.id))
    return Page[TenantOut](items=[TenantOut.of(t) for t in rows], next_cursor=next_cursor)


@router.get(
    "/tenants/by-slug/{slug}",
    response_model=TenantOut,
    summary="Get a tenant by slug",
    responses={**_TENANT_RESPONSE, **problem_responses(401, 403, 404)},
)
async def get_tenant_by_slug(
    slug: Annotated[str, Path(min_length=1, max_length=63, examples=["acme"])],
    principal: CurrentPrincipal,
    parts: Parts,
) -> Response:
    """A tenant by its slug (deleted tenants keep theirs). Its own tenant only, unless platform admin."""
    require_scope(principal, "tenant:read")
    async with parts.db.unscoped_transaction() as session:
        tenant = await repository.get_by_slug(session, slug)
    if tenant is None or not principal.can_read(tenant.id):
        raise TenantNotFound("No such tenant.")
    return tenant_response(tenant)


@router.get(
    "/tenants/{id}",
    response_model=TenantOut,
    summary="Get a tenant",
    responses={**_TENANT_RESPONSE, **problem_responses(401, 403, 404)},
)
async def get_tenant(ref: TenantRef, principal: CurrentPrincipal, parts: Parts) -> Response:
    """A tenant by id (or slug). Its own tenant only, unless platform admin."""
    require_scope(principal, "tenant:read")
    async with parts.tenant_unit(ref, principal, access="read") as (_, tenant):
        return tenant_response(tenant)


@router.put(
    "/tenants/{id}",
    response_model=TenantOut,
    summary="Update a tenant",
    responses={**_TENANT_RESPONSE, **problem_responses(400, 401, 403, 404, 409, 412, 422)},
)
async def update_tenant(
    ref: TenantRef,
    body: TenantUpdate,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Change name, metadata or plan, with optimistic concurrency (`If-Match`).

    Tenant admins may change their own tenant's name and metadata; changing the
    plan takes a platform admin. Emits TenantUpdated and/or TenantPlanChanged,
    and a TenantSnapshot. A deleted tenant is a 409.
    """
    require_scope(principal, "tenant:write")
    async with parts.tenant_unit(ref, principal, access="admin", lock="update") as (
        session,
        tenant,
    ):

        async def produce() -> Response:
            if body.plan is not None and body.plan != tenant.plan:
                principal.require_platform_admin()  # the plan is what the tenant is billed for
            updated = await service.update_tenant(
                session,
                parts.sink,
                parts.settings,
                tenant,
                name=body.name,
                plan=body.plan,
                metadata=body.metadata,
                expected_version=expected_version(if_match),
            )
            return tenant_response(updated)

        return await parts.write(session, request, principal, produce)


async def _transition(
    ref: str,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    target: TenantStatus,
    *,
    reason: str | None = None,
    if_match: str | None = None,
) -> Response:
    async with parts.tenant_unit(ref, principal, access="platform", lock="update") as (
        session,
        tenant,
    ):

        async def produce() -> Response:
            moved = await service.transition(
                session,
                parts.sink,
                parts.settings,
                tenant,
                target,
                reason=reason,
                expected_version=expected_version(if_match),
            )
            return tenant_response(moved)

        return await parts.write(session, request, principal, produce)


_LIFECYCLE_ERRORS = problem_responses(400, 401, 403, 404, 409, 412, 422)


@router.post(
    "/tenants/{id}/activate",
    response_model=TenantOut,
    summary="Activate a tenant",
    responses={**_TENANT_RESPONSE, **_LIFECYCLE_ERRORS},
)
async def activate_tenant(
    ref: TenantRef,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """`pending` → `active`, or resume a `suspended` tenant. Platform admins only.

    Any other move is a 409 whose body lists `allowed_transitions`. Emits TenantActivated.
    """
    return await _transition(ref, request, principal, parts, TenantStatus.ACTIVE, if_match=if_match)


@router.post(
    "/tenants/{id}/suspend",
    response_model=TenantOut,
    summary="Suspend a tenant",
    responses={**_TENANT_RESPONSE, **_LIFECYCLE_ERRORS},
)
async def suspend_tenant(
    ref: TenantRef,
    body: SuspendRequest,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """`active` → `suspended`, with a reason; its users are refused until it is activated again.

    Platform admins only. Emits TenantSuspended.
    """
    return await _transition(
        ref,
        request,
        principal,
        parts,
        TenantStatus.SUSPENDED,
        reason=body.reason,
        if_match=if_match,
    )


@router.delete(
    "/tenants/{id}",
    response_model=TenantOut,
    summary="Delete a tenant (soft)",
    responses={**_TENANT_RESPONSE, **_LIFECYCLE_ERRORS},
)
async def delete_tenant(
    ref: TenantRef,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Any status → `deleted` (soft delete: the row and its slug stay). Platform admins only.

    Deleting again is a 409; the default tenant cannot be deleted. Emits TenantDeleted.
    """
    return await _transition(
        ref, request, principal, parts, TenantStatus.DELETED, if_match=if_match
    )


@router.get(
    "/tenants/{id}/received-events",
    response_model=Page[ReceivedEventOut],
    summary="Events received about a tenant",
    responses=problem_responses(400, 401, 403, 404),
)
async def list_received_events(
    ref: TenantRef,
    principal: CurrentPrincipal,
    parts: Parts,
    cursor: Cursor = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> Page[ReceivedEventOut]:
    """What other services reported about the tenant (onboarding completed, invitation
    accepted, quota exceeded) and what tenant-svc did about it, newest first. Tenant admins."""
    size = min(limit or parts.settings.page_size_default, parts.settings.page_size_max)
    before = None
    if cursor:
        received, event_id = decode_cursor(cursor, 2)
        before = (cursor_instant(received), cursor_uuid(event_id))
    async with parts.tenant_unit(ref, principal, access="admin") as (session, tenant):
        rows = await repository.received_events(session, tenant.id, before=before, limit=size + 1)
    rows, next_cursor = next_page(rows, size, lambda r: (r.received_at.isoformat(), r.event_id))
    return Page[ReceivedEventOut](
        items=[
            ReceivedEventOut(
                event_id=r.event_id,
                type=r.type,
                outcome=r.outcome,
                detail=r.detail,
                received_at=r.received_at,
            )
            for r in rows
        ],
        next_cursor=next_cursor,
    )
