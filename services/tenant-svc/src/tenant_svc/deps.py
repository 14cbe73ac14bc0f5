"""What routes share: the service's parts, the unit of work on one tenant, ETags, scopes,
the ``If-Match`` and ``Idempotency-Key`` headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from stellara_kit.auth import Principal
from stellara_kit.bounds import INT32_MAX, bounded_int
from stellara_kit.db import Database
from stellara_kit.outbox import EventSink
from stellara_kit.problems import InsufficientScope
from stellara_kit.tenant_unit import TenantUnits
from tenant_svc.config.catalogue import ConfigCatalogue
from tenant_svc.idempotency import MAX_KEY_LENGTH, IdempotencyStore, idempotent
from tenant_svc.models import Tenant
from tenant_svc.settings import Settings
from tenant_svc.tenants import repository as tenants_repo


@dataclass(frozen=True)
class TenantParts:
    """The parts of the service a request needs, built once in ``create_app``."""

    settings: Settings
    db: Database
    sink: EventSink
    catalogue: ConfigCatalogue
    idempotency: IdempotencyStore
    #: ``async with parts.tenant_unit(ref, principal, access=…, lock=…) as (session, tenant)``:
    #: one transaction on the tenant ``ref`` (id or slug), after authorizing the caller
    tenant_unit: TenantUnits[Tenant]

    async def write(
        self,
        session: AsyncSession,
        request: Request,
        principal: Principal,
        produce: Callable[[], Awaitable[Response]],
        *,
        replay_as: Callable[[Response], Response] | None = None,
    ) -> Response:
        """Run a write once per ``Idempotency-Key`` inside the open transaction."""
        return await idempotent(
            self.idempotency, session, request, principal, produce, replay_as=replay_as
        )


def tenant_units(db: Database) -> TenantUnits[Tenant]:
    """Units of work on a tenant of tenant-svc: by id under row-level security, or by slug."""
    return TenantUnits(db, by_id=tenants_repo.get, by_slug=tenants_repo.get_by_slug)


def require_scope(principal: Principal, scope: str) -> None:
    """A caller that came with an API key needs the scope for what it does."""
    if principal.via == "api_key" and scope not in principal.scopes:
        raise InsufficientScope(f"This API key lacks the `{scope}` scope.", required_scope=[scope])


def refuse_api_keys(principal: Principal) -> None:
    """Managing members and API keys is for people, not for machine clients."""
    if principal.via == "api_key":
        raise InsufficientScope(
            "API keys cannot manage members or API keys; sign in as an admin.", required_scope=[]
        )


def _parts(request: Request) -> TenantParts:
    parts: TenantParts = request.app.state.parts
    return parts


#: ``parts: Parts`` in a route signature
Parts = Annotated[TenantParts, Depends(_parts)]

#: the ``{id}`` path segment: a tenant id, or a slug
TenantRef = Annotated[
    str,
    Path(
        alias="id",
        description="The tenant's id (UUID) or its slug.",
        examples=["5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11"],
        min_length=1,
        max_length=63 * 2,
    ),
]

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="ETag of the version you read; a stale one gets 412 and changes nothing.",
        examples=['"3"'],
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Send the same key to retry safely: the first response is replayed; "
        f"the same key with a different body is a 422. 1 to {MAX_KEY_LENGTH} printable "
        "characters (else 400 `bad-idempotency-key`); a new key for each new request.",
        examples=["4f1c7e2a-0d9b-4d6e-8a51-93c0a3f7e2b1"],
        # documented, not validated here: the idempotency guard answers 400 with its own code
        json_schema_extra={"minLength": 1, "maxLength": MAX_KEY_LENGTH},
    ),
]

Cursor = Annotated[
    str | None, Query(description="`next_cursor` of the previous page.", max_length=512)
]


def etag_of(version: int) -> str:
    return f'"{version}"'


def matches(if_match: str | None, version: int) -> bool:
    """Whether an ``If-Match`` header admits ``version`` (no header admits anything)."""
    if if_match is None:
        return True
    for candidate in (part.strip() for part in if_match.split(",")):
        if candidate == "*":
            return True
        candidate = candidate.removeprefix("W/").strip('"')
        if candidate == str(version):
            return True
    return False


def expected_version(if_match: str | None) -> int | None:
    """The single version an ``If-Match`` names (None: no header or ``*``); -1 if unreadable."""
    if if_match is None or if_match.strip() == "*":
        return None
    value = if_match.split(",")[0].strip().removeprefix("W/").strip('"')
    version = bounded_int(value, INT32_MAX)
    return -1 if version is None else version
