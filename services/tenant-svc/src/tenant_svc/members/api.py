"""Member routes: list, add, change role, remove, import. Tenant admins of the tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from stellara_kit.auth import CurrentPrincipal
from stellara_kit.pagination import (
    Page,
    cursor_instant,
    decode_cursor,
    next_page,
)
from stellara_kit.problems import Unprocessable, problem_responses
from tenant_svc.deps import Cursor, IdempotencyKey, Parts, TenantRef, refuse_api_keys
from tenant_svc.members import importing, service
from tenant_svc.members.schemas import (
    ImportReport,
    ImportRequest,
    MemberIn,
    MemberOut,
    MemberRole,
    RoleChange,
)

router = APIRouter(tags=["members"])

UserId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=service.USER_ID_MAX_LENGTH,
        pattern=service.USER_ID_PATTERN,
        description="The user's id at the identity provider.",
        examples=["8d7f5a9c-2b1e-4c3d-9e8f-7a6b5c4d3e2f"],
    ),
]


def member_response(member: object, status_code: int = 200) -> JSONResponse:
    return JSONResponse(MemberOut.of(member).model_dump(mode="json"), status_code=status_code)  # type: ignore[arg-type]


@router.get(
    "/tenants/{id}/members",
    response_model=Page[MemberOut],
    summary="List members",
    responses=problem_responses(400, 401, 403, 404),
)
async def list_members(
    ref: TenantRef,
    principal: CurrentPrincipal,
    parts: Parts,
    role: Annotated[MemberRole | None, Query(description="Only this role.")] = None,
    cursor: Cursor = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> Page[MemberOut]:
    """The tenant's members, in the order they joined."""
    refuse_api_keys(principal)
    size = min(limit or parts.settings.page_size_default, parts.settings.page_size_max)
    after = None
    if cursor:
        joined, user_id = decode_cursor(cursor, 2)
        after = (cursor_instant(joined), user_id)
    async with parts.tenant_unit(ref, principal, access="admin") as (session, tenant):
        rows = await service.list_members(
            session, tenant.id, role=role, after=after, limit=size + 1
        )
    rows, next_cursor = next_page(rows, size, lambda m: (m.created_at.isoformat(), m.user_id))
    return Page[MemberOut](items=[MemberOut.of(m) for m in rows], next_cursor=next_cursor)


@router.post(
    "/tenants/{id}/members",
    response_model=MemberOut,
    status_code=201,
    summary="Add a member",
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def add_member(
    ref: TenantRef,
    body: MemberIn,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Add a user with a role; a user id or email already in the tenant is a 409. Emits MemberAdded."""
    refuse_api_keys(principal)
    async with parts.tenant_unit(ref, principal, access="admin", lock="share") as (session, tenant):

        async def produce() -> Response:
            member = await service.add_member(
                session,
                parts.sink,
                tenant,
                user_id=body.user_id,
                email=body.email,
                role=body.role,
                name=body.name,
            )
            return member_response(member, 201)

        return await parts.write(session, request, principal, produce)


@router.post(
    "/tenants/{id}/members/import",
    response_model=ImportReport,
    summary="Import users as members",
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def import_members(
    ref: TenantRef,
    body: ImportRequest,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Add every new user of a batch of rows (the migration path from a single-tenant user
    base; `stellara tenants import-users FILE` sends files here). Users already there are
    skipped, bad rows are reported with the reason: running an import twice changes nothing.
    Emits MemberAdded (`via: import`) per created member."""
    refuse_api_keys(principal)
    if len(body.rows) > parts.settings.import_batch_max:
        raise Unprocessable(
            f"At most {parts.settings.import_batch_max} rows fit in one request; send batches."
        )
    rows = []
    for index, row in enumerate(body.rows, start=1):
        line = row.get("line")
        rows.append((line if isinstance(line, int) else index, row))
    async with parts.tenant_unit(ref, principal, access="admin", lock="share") as (session, tenant):

        async def produce() -> Response:
            results = await importing.import_members(session, parts.sink, tenant, rows)
            return JSONResponse(ImportReport.of(results).model_dump(mode="json"))

        return await parts.write(session, request, principal, produce)


@router.get(
    "/tenants/{id}/members/{user_id}",
    response_model=MemberOut,
    summary="Get a member",
    responses=problem_responses(401, 403, 404),
)
async def get_member(
    ref: TenantRef, user_id: UserId, principal: CurrentPrincipal, parts: Parts
) -> MemberOut:
    """One member of the tenant."""
    refuse_api_keys(principal)
    async with parts.tenant_unit(ref, principal, access="admin") as (session, tenant):
        return MemberOut.of(await service.get_member(session, tenant.id, user_id))


@router.put(
    "/tenants/{id}/members/{user_id}",
    response_model=MemberOut,
    summary="Change a member's role",
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def change_role(
    ref: TenantRef,
    user_id: UserId,
    body: RoleChange,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Give a member another role. Demoting the only admin is a 409. Emits MemberAdded
    with the new role."""
    refuse_api_keys(principal)
    async with parts.tenant_unit(ref, principal, access="admin", lock="share") as (session, tenant):

        async def produce() -> Response:
            member = await service.change_role(session, parts.sink, tenant, user_id, body.role)
            return member_response(member)

        return await parts.write(session, request, principal, produce)


@router.delete(
    "/tenants/{id}/members/{user_id}",
    status_code=204,
    summary="Remove a member",
    responses=problem_responses(400, 401, 403, 404, 409),
)
async def remove_member(
    ref: TenantRef,
    user_id: UserId,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Remove a user from the tenant. Removing the only admin is a 409. Emits MemberRemoved."""
    refuse_api_keys(principal)
    async with parts.tenant_unit(ref, principal, access="admin", lock="share") as (session, tenant):

        async def produce() -> Response:
            await service.remove_member(session, parts.sink, tenant, user_id)
            return Response(status_code=204)

        return await parts.write(session, request, principal, produce)
