"""Configuration routes. In paths a key is named `category.key` (e.g. `billing.hard_limit_action`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from stellara_kit.auth import CurrentPrincipal
from stellara_kit.pagination import Page, cursor_id, decode_cursor, next_page
from stellara_kit.problems import problem_responses
from tenant_svc.config import service
from tenant_svc.config.catalogue import DOTTED_KEY_PATTERN, ConfigKey, split_key
from tenant_svc.config.schemas import (
    Category,
    ConfigBulk,
    ConfigChangesOut,
    ConfigEntryOut,
    ConfigSet,
    ConfigValueIn,
    ConfigView,
    HistoryEntryOut,
    RollbackRequest,
)
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
from tenant_svc.errors import InvalidConfig

router = APIRouter(tags=["configuration"])

DottedKey = Annotated[
    str,
    Path(
        alias="key",
        description="`category.key`, e.g. `billing.hard_limit_action`.",
        examples=["billing.hard_limit_action"],
        min_length=3,
        max_length=160,
        pattern=DOTTED_KEY_PATTERN,
    ),
]
_WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 422)
_ENTRY_ETAG = {
    "headers": {
        "ETag": {
            "description": "The key's version, quoted (absent for a platform default); send it "
            "back as `If-Match`.",
            "schema": {"type": "string", "examples": ['"2"']},
        }
    }
}


def _entry(description: str) -> dict[str, Any]:
    return {"description": description, "model": ConfigEntryOut, **_ENTRY_ETAG}


def parse_key(dotted: str) -> ConfigKey:
    try:
        return split_key(dotted)
    except ValueError as exc:
        raise InvalidConfig(
            f"{dotted!r} does not name a key: write it as `category.key`.",
            errors=[{"key": dotted, "reason": "expected `category.key`"}],
        ) from exc


def entry_response(value: service.ConfigValue, status_code: int = 200) -> JSONResponse:
    headers = {"ETag": etag_of(value.version)} if value.version is not None else {}
    return JSONResponse(
        ConfigEntryOut.of(value).model_dump(mode="json"), status_code=status_code, headers=headers
    )


@router.get(
    "/tenants/{id}/config",
    response_model=ConfigView,
    summary="Get a tenant's configuration",
    responses=problem_responses(401, 403, 404),
)
async def get_config(
    ref: TenantRef,
    principal: CurrentPrincipal,
    parts: Parts,
    category: Annotated[Category | None, Query(description="Only this category.")] = None,
    effective: Annotated[
        bool,
        Query(
            description="Merge the platform defaults in (each entry says its `source`); "
            "false: only the tenant's own values."
        ),
    ] = True,
) -> ConfigView:
    """The tenant's configuration, by default effective (defaults merged with its values)."""
    require_scope(principal, "config:read")
    async with parts.tenant_unit(ref, principal, access="read") as (session, tenant):
        values = await service.read_config(
            session, parts.catalogue, tenant.id, category=category, effective=effective
        )
    return ConfigView.of(tenant.id, effective, values)


@router.post(
    "/tenants/{id}/config",
    response_model=ConfigEntryOut,
    status_code=201,
    summary="Set one configuration key",
    responses={
        201: _entry("The key was created."),
        200: _entry("The key existed; its value was replaced."),
        **_WRITE_ERRORS,
    },
)
async def set_config_key(
    ref: TenantRef,
    body: ConfigSet,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Set a key: 201 when it was not set for the tenant, 200 when its value was replaced.

    A value that does not match the key's JSON Schema, or an unknown key in a
    closed category, is a 422 naming the key and the reason. Emits TenantConfigChanged.
    """
    require_scope(principal, "config:write")
    name = (body.category, body.key)
    async with parts.tenant_unit(ref, principal, access="admin", lock="share") as (session, tenant):

        async def produce() -> Response:
            value, created = await service.set_key(
                session,
                parts.sink,
                parts.catalogue,
                tenant,
                name,
                body.value,
                actor=principal.subject,
            )
            return entry_response(value, 201 if created else 200)

        return await parts.write(session, request, principal, produce)


@router.patch(
    "/tenants/{id}/config",
    response_model=ConfigChangesOut,
    summary="Change many configuration keys at once",
    responses=_WRITE_ERRORS,
)
async def change_config(
    ref: TenantRef,
    body: ConfigBulk,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Apply every change or none: one refused change (422, listing every refused key) or a
    delete of a key that is not set refuses the whole request. Emits one TenantConfigChanged."""
    require_scope(principal, "config:write")
    if len(body.changes) > parts.settings.config_bulk_max_changes:
        raise InvalidConfig(
            f"At most {parts.settings.config_bulk_max_changes} changes fit in one request.",
            errors=[],
        )
    changes = [
        service.Change(c.category, c.key, c.op, c.value if c.op == "set" else None)
        for c in body.changes
    ]
    async with parts.tenant_unit(ref, principal, access="admin", lock="share") as (session, tenant):

        async def produce() -> Response:
            applied = await service.apply_changes(
                session, parts.sink, parts.catalogue, tenant, changes, actor=principal.subject
            )
            return JSONResponse(ConfigChangesOut(changes=applied).model_dump(mode="json"))

        return await parts.write(session, request, principal, produce)


@router.get(
    "/tenants/{id}/config/history",
    response_model=Page[HistoryEntryOut],
    summary="List configuration changes",
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def config_history(
    ref: TenantRef,
    principal: CurrentPrincipal,
    parts: Parts,
    key: Annotated[
        str | None,
        Query(
            description="Only this key, as `category.key`.",
            examples=["billing.hard_limit_action"],
            min_length=3,
            max_length=160,
            pattern=DOTTED_KEY_PATTERN,
        ),
    ] = None,
    category: Annotated[Category | None, Query(description="Only this category.")] = None,
    cursor: Cursor = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> Page[HistoryEntryOut]:
    """Every change (old value, new value, who, when, version), newest first. Tenant admins."""
    name = parse_key(key) if key else None
    size = min(limit or parts.settings.page_size_default, parts.settings.page_size_max)
    before = None
    if cursor:
        (position,) = decode_cursor(cursor, 1)
        before = cursor_id(position)
    async with parts.tenant_unit(ref, principal, access="admin") as (session, tenant):
        rows = await service.history(
            session, tenant.id, name=name, category=category, before_id=before, limit=size + 1
        )
    rows, next_cursor = next_page(rows, size, lambda r: (r.id,))
    return Page[HistoryEntryOut](
        items=[HistoryEntryOut.of(r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/tenants/{id}/config/{key}",
    response_model=ConfigEntryOut,
    summary="Get one configuration key",
    responses={200: _entry("The key's value."), **problem_responses(401, 403, 404, 422)},
)
async def get_config_key(
    ref: TenantRef, dotted: DottedKey, principal: CurrentPrincipal, parts: Parts
) -> Response:
    """One key's effective value (the tenant's, else the platform default) and its source."""
    require_scope(principal, "config:read")
    name = parse_key(dotted)
    async with parts.tenant_unit(ref, principal, access="read") as (session, tenant):
        value = await service.read_value(session, parts.catalogue, tenant.id, name)
    return entry_response(value)


@router.put(
    "/tenants/{id}/config/{key}",
    response_model=ConfigEntryOut,
    summary="Update one configuration key",
    responses={
        200: _entry("The key's new value."),
        **problem_responses(400, 401, 403, 404, 409, 412, 422),
    },
)
async def put_config_key(
    ref: TenantRef,
    dotted: DottedKey,
    body: ConfigValueIn,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Set the key named in the path (`category.key`); `If-Match` with the key's ETag (its
    version) refuses the write with 412 when the key changed since. Emits TenantConfigChanged."""
    require_scope(principal, "config:write")
    name = parse_key(dotted)
    async with parts.tenant_unit(ref, principal, access="admin", lock="share") as (session, tenant):

        async def produce() -> Response:
            value, _ = await service.set_key(
                session,
                parts.sink,
                parts.catalogue,
                tenant,
                name,
                body.value,
                actor=principal.subject,
                expected_version=expected_version(if_match),
            )
            return entry_response(value)

        return await parts.write(session, request, principal, produce)


@router.delete(
    "/tenants/{id}/config/{key}",
    status_code=204,
    summary="Delete one configuration key",
    responses=problem_responses(400, 401, 403, 404, 409, 412, 422),
)
async def delete_config_key(
    ref: TenantRef,
    dotted: DottedKey,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Remove the tenant's value (the platform default, if any, applies again); 404 if it is
    not set. Emits TenantConfigChanged."""
    require_scope(principal, "config:write")
    name = parse_key(dotted)
    async with parts.tenant_unit(ref, principal, access="admin", lock="share") as (session, tenant):

        async def produce() -> Response:
            await service.delete_key(
                session,
                parts.sink,
                parts.catalogue,
                tenant,
                name,
                actor=principal.subject,
                expected_version=expected_version(if_match),
            )
            return Response(status_code=204)

        return await parts.write(session, request, principal, produce)


@router.post(
    "/tenants/{id}/config/{key}/rollback",
    response_model=ConfigChangesOut,
    summary="Roll a configuration key back",
    responses={
        200: {"description": "What the rollback changed (nothing when the value already is it)."},
        **problem_responses(400, 401, 403, 404, 409, 422),
    },
)
async def rollback_config_key(
    ref: TenantRef,
    dotted: DottedKey,
    body: RollbackRequest,
    request: Request,
    principal: CurrentPrincipal,
    parts: Parts,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Bring the key back to its value at `version` — recorded as a new version, with a
    TenantConfigChanged; the response lists what changed (nothing when the value already is
    the one asked for). Rolling back to a delete removes the key again. 404 if the version
    does not exist; 422 if that value no longer matches the key's schema."""
    require_scope(principal, "config:write")
    name = parse_key(dotted)
    async with parts.tenant_unit(ref, principal, access="admin", lock="share") as (session, tenant):

        async def produce() -> Response:
            applied = await service.rollback(
                session,
                parts.sink,
                parts.catalogue,
                tenant,
                name,
                body.version,
                actor=principal.subject,
            )
            return JSONResponse(ConfigChangesOut(changes=applied).model_dump(mode="json"))

        return await parts.write(session, request, principal, produce)
