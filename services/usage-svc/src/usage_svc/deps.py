"""What routes share: the service's parts, authorizing a tenant's usage, CSV answers."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request, Response

from stellara_contracts.events import TenantSnapshot
from stellara_kit.auth import Principal
from stellara_kit.db import Database
from stellara_kit.problems import Forbidden
from stellara_kit.tenant_directory import TenantDirectory
from usage_svc.errors import TenantNotFound
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.settings import Settings

USAGE_READ_SCOPE = "usage:read"
CSV = "text/csv"


@dataclass(frozen=True)
class UsageParts:
    """The parts of the service a request needs, built once in ``create_app``."""

    settings: Settings
    db: Database
    directory: TenantDirectory
    meters: MeterCatalogue

    def readable_tenant(self, principal: Principal, tenant_id: UUID) -> TenantSnapshot:
        """The tenant whose usage the caller may read; anyone else's is a 404."""
        principal.require_read(tenant_id)
        if principal.via == "api_key" and USAGE_READ_SCOPE not in principal.scopes:
            raise Forbidden(
                f"This API key lacks the `{USAGE_READ_SCOPE}` scope.",
                required_scope=USAGE_READ_SCOPE,
            )
        tenant = self.directory.get(tenant_id)
        if tenant is None:
            raise TenantNotFound("No such tenant.")
        return tenant


def _parts(request: Request) -> UsageParts:
    parts: UsageParts = request.app.state.usage
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
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {CSV: {"schema": {"type": "string"}}},
        "description": "JSON, or CSV with `Accept: text/csv`.",
    }
}
