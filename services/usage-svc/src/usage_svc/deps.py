"""What routes share: the service's parts, the unit of work on a tenant's usage, CSV answers."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts.envelope import plain_decimal
from stellara_contracts.events import TenantSnapshot
from stellara_kit.auth import Principal
from stellara_kit.db import Database
from stellara_kit.locks import RowLock
from stellara_kit.problems import InsufficientScope
from stellara_kit.tenant_directory import TenantDirectory
from stellara_kit.tenant_unit import TenantUnits
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.settings import Settings

#: API-key scopes that may read a tenant's usage (as the public API documents them)
USAGE_READ_SCOPES = frozenset({"usage:read", "tenant:read"})
CSV = "text/csv"


@dataclass(frozen=True)
class UsageParts:
    """The parts of the service a request needs, built once in ``create_app``."""

    settings: Settings
    db: Database
    directory: TenantDirectory
    meters: MeterCatalogue
    #: ``async with parts.tenant_unit(tenant_id, principal, access=…) as (session, tenant)``:
    #: one transaction on a tenant whose usage the caller may read (anyone else's is a 404)
    tenant_unit: TenantUnits[TenantSnapshot]


def require_usage_scope(principal: Principal) -> None:
    """A caller that came with an API key needs a scope that reads usage."""
    if principal.via == "api_key" and not principal.scopes & USAGE_READ_SCOPES:
        raise InsufficientScope(
            "This API key has neither the `usage:read` nor the `tenant:read` scope.",
            required_scope=sorted(USAGE_READ_SCOPES),
        )


def tenant_units(db: Database, directory: TenantDirectory) -> TenantUnits[TenantSnapshot]:
    """Units of work on a tenant of usage-svc, found in the tenant directory."""

    async def find(
        session: AsyncSession, tenant_id: UUID, *, lock: RowLock = None
    ) -> TenantSnapshot | None:
        return directory.get(tenant_id)

    return TenantUnits(db, by_id=find, check=require_usage_scope)


def _parts(request: Request) -> UsageParts:
    parts: UsageParts = request.app.state.parts
    return parts


Parts = Annotated[UsageParts, Depends(_parts)]


def wants_csv(request: Request) -> bool:
    return CSV in request.headers.get("accept", "").lower()


def csv_response(
    header: Sequence[str], rows: Iterable[Sequence[Any]], *, filename: str
) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if cell is None else _cell(cell) for cell in row])
    return Response(
        buffer.getvalue(),
        media_type=f"{CSV}; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


def _cell(value: Any) -> str:
    if isinstance(value, Decimal):
        return plain_decimal(value)  # as the JSON answers write it
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def ok_response(example: Any, csv_example: str | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI of a 200 answer: a JSON example and, for routes that speak CSV, a CSV one."""
    content: dict[str, Any] = {"application/json": {"example": example}}
    if csv_example is None:
        return {200: {"content": content}}
    content[CSV] = {"schema": {"type": "string"}, "example": csv_example}
    return {200: {"content": content, "description": "JSON, or CSV with `Accept: text/csv`."}}
