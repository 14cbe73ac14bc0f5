"""No hostile input is a 5xx: every operation of the service's own OpenAPI document, each
value a database or a JSON peer cannot take (NUL, lone surrogates, NaN/Infinity/1e999,
integers past int32/int64, dates at the ends of the calendar, an oversized body),
answered with a 4xx problem+json naming the field."""

from __future__ import annotations

import httpx
import pytest

from stellara_kit.testing.hostile import HostileRequest, hostile_requests, refusal_problem
from usage_svc.main import create_app
from usage_svc.settings import Settings

from .conftest import RunningService
from .helpers import headers

VALID_BODIES = {
    "POST /meters": {"key": "hostile_meter", "aggregation": "SUM", "unit": "calls"},
}
REQUESTS = hostile_requests(create_app(Settings(environment="test")).openapi(), bodies=VALID_BODIES)


async def send(service: RunningService, hostile: HostileRequest) -> httpx.Response:
    tenant = getattr(service, "hostile_tenant", None)
    if tenant is None:
        tenant = (await service.new_tenant()).tenant_id
        service.hostile_tenant = tenant  # type: ignore[attr-defined]
    return await service.http.request(
        hostile.method,
        hostile.path({"tenant_id": str(tenant)}),
        params=hostile.params,
        headers={**headers(service.settings), **hostile.headers},
        content=hostile.content,
    )


@pytest.mark.parametrize("hostile", REQUESTS, ids=lambda r: r.id)
async def test_hostile_input_is_a_problem_never_a_server_error(
    service: RunningService, hostile: HostileRequest
) -> None:
    assert refusal_problem(await send(service, hostile)) is None


async def test_the_calendar_ends_name_the_parameter(service: RunningService) -> None:
    tenant = await service.new_tenant()
    response = await service.http.get(
        f"/tenants/{tenant.tenant_id}/usage/daily",
        params={"from": "0001-01-01", "to": "9999-12-31"},
        headers=headers(service.settings),
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["location"] == "query.from"
    assert "1970-01-01 to 9998-12-31" in response.json()["detail"]
