"""API key routes: create, list, get, revoke (tenant admins); verify (the gateway)."""

from __future__ import annotations

import json
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from stellara_kit.auth import CurrentPrincipal
from stellara_kit.pagination import (
    Page,
    cursor_instant,
    cursor_uuid,
    decode_cursor,
    next_page,
)
from stellara_kit.problems import PROBLEM_JSON, Conflict, problem_responses
from tenant_svc.apikeys import repository, service
from tenant_svc.apikeys.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    VerifyRequest,
    VerifyResult,
)
from tenant_svc.deps import Cursor, IdempotencyKey, Parts, TenantRef, refuse_api_keys

router = APIRouter(tags=["api keys"])

KeyId = Annotated[
    UUID, Path(description="The API key's id.", examples=["e3b0c442-98fc-4c14-9afb-f4c8996fb924"])
]


def _secret_not_replayable(response: Response) -> Response:
    """What a retry of a create gets: the key exists, its secret was shown once."""
    created = json.loads(bytes(response.body))
    problem = Conflict(
        "This Idempotency-Key already created an API key; its secret was shown once and is "
        "not stored. Revoke that key if the secret was lost, and create a new one.",
        slug="api-key-already-created",
        title="API key already created",
        key_id=created["id"],
        prefix=created["prefix"],
    )
    return Response(json.dumps(problem.body()).encode(), status_code=409, media_type=PROBLEM_JSON)


@router.post(
    "/tenants/{id}/api-keys",
    response_model=ApiKeyCreated,
    status_code=201,
    summary="Create an API key",
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def create_api_key(
    ref: TenantRef,
    body: ApiKeyCreate,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A new key with scopes and an optional expiry. The response holds the secret — the
    only time it is shown; only its hash is stored. A retry with the same `Idempotency-Key`
    gets a 409 naming the key (the secret cannot be shown twice)."""
    refuse_api_keys(principal)
    async with parts.tenant_unit(ref, principal, access="admin", lock="share") as (session, tenant):

        async def produce() -> Response:
            key, secret = await service.create_key(
                session,
                parts.settings,
                tenant,
                name=body.name,
                scopes=body.scopes,
                expires_at=body.expires_at,
                actor=principal.subject,
            )
            out = ApiKeyCreated(
                **ApiKeyOut.of(key, parts.settings.api_key_prefix).model_dump(), secret=secret
            )
            return JSONResponse(out.model_dump(mode="json"), status_code=201)

        return await parts.write(
            session, request, principal, produce, replay_as=_secret_not_replayable
        )


@router.get(
    "/tenants/{id}/api-keys",
    response_model=Page[ApiKeyOut],
    summary="List API keys",
    responses=problem_responses(400, 401, 403, 404),
)
async def list_api_keys(
    ref: TenantRef,
    principal: CurrentPrincipal,
    parts: Parts,
    include_revoked: Annotated[bool, Query(description="Also list revoked keys.")] = False,
    cursor: Cursor = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> Page[ApiKeyOut]:
    """The tenant's keys, oldest first — never their secrets."""
    refuse_api_keys(principal)
    size = min(limit or parts.settings.page_size_default, parts.settings.page_size_max)
    after = None
    if cursor:
        created, key_id = decode_cursor(cursor, 2)
        after = (cursor_instant(created), cursor_uuid(key_id))
    async with parts.tenant_unit(ref, principal, access="admin") as (session, tenant):
        rows = await repository.list_page(
            session, tenant.id, include_revoked=include_revoked, after=after, limit=size + 1
        )
    rows, next_cursor = next_page(rows, size, lambda k: (k.created_at.isoformat(), k.id))
    prefix = parts.settings.api_key_prefix
    return Page[ApiKeyOut](items=[ApiKeyOut.of(k, prefix) for k in rows], next_cursor=next_cursor)


@router.get(
    "/tenants/{id}/api-keys/{key_id}",
    response_model=ApiKeyOut,
    summary="Get an API key",
    responses=problem_responses(401, 403, 404),
)
async def get_api_key(
    ref: TenantRef, key_id: KeyId, principal: CurrentPrincipal, parts: Parts
) -> ApiKeyOut:
    """One key of the tenant, without its secret."""
    refuse_api_keys(principal)
    async with parts.tenant_unit(ref, principal, access="admin") as (session, tenant):
        return ApiKeyOut.of(
            await service.get_key(session, tenant, key_id), parts.settings.api_key_prefix
        )


@router.delete(
    "/tenants/{id}/api-keys/{key_id}",
    response_model=ApiKeyOut,
    summary="Revoke an API key",
    responses=problem_responses(400, 401, 403, 404),
)
async def revoke_api_key(
    ref: TenantRef,
    key_id: KeyId,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Revoke a key for good: from now on it verifies as invalid. Revoking twice is harmless."""
    refuse_api_keys(principal)
    async with parts.tenant_unit(ref, principal, access="admin") as (session, tenant):

        async def produce() -> Response:
            key = await service.revoke_key(session, tenant, key_id)
            return JSONResponse(
                ApiKeyOut.of(key, parts.settings.api_key_prefix).model_dump(mode="json")
            )

        return await parts.write(session, request, principal, produce)


@router.post(
    "/internal/api-keys/verify",
    response_model=VerifyResult,
    response_model_exclude_none=True,
    tags=["internal"],
    summary="Verify an API key (gateway)",
    responses=problem_responses(401, 403, 422),
)
async def verify_api_key(
    body: VerifyRequest, principal: CurrentPrincipal, parts: Parts
) -> VerifyResult:
    """Whether a presented key is live, with its tenant and scopes. For the gateway (an
    internal platform_admin token). Unknown, revoked, expired and deleted-tenant keys all get
    the same `{"valid": false}`; the secret is compared in constant time."""
    principal.require_platform_admin()
    async with parts.db.system_transaction() as session:
        verified = await service.verify_key(session, parts.settings, body.key)
    if verified is None:
        return VerifyResult(valid=False)
    return VerifyResult(
        valid=True,
        key_id=verified.key.id,
        tenant_id=verified.tenant.id,
        tenant_slug=verified.tenant.slug,
        tenant_status=verified.tenant.status,
        scopes=list(verified.key.scopes),
        expires_at=verified.key.expires_at,
    )
