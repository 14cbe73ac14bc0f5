"""The gateway's HTTP routes, declared one by one from the route table.

Each public route gets its own endpoint, and every endpoint hands the request
to the gateway pipeline. There is no catch-all: a path that is not in the
table is 404. The OpenAPI document is built in :mod:`gateway.openapi`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response

from gateway.deps import parts_of
from gateway.routes import ROUTES, Route
from stellara_contracts import topics
from stellara_contracts.generate import asyncapi_document

Endpoint = Callable[..., Awaitable[Response]]


def _endpoint(route: Route) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return await parts_of(request).handle(route, request)

    endpoint.__name__ = route.operation_id
    return endpoint


def build_router(routes: tuple[Route, ...] = ROUTES) -> APIRouter:
    router = APIRouter()
    for route in routes:
        router.add_api_route(
            route.path,
            _endpoint(route),
            methods=[route.method],
            response_model=None,
            operation_id=route.operation_id,
            name=route.operation_id,
        )

    @router.get("/asyncapi.json", tags=["operations"], summary="AsyncAPI of the gateway's events")
    async def asyncapi() -> dict[str, Any]:
        """The topics the gateway publishes (`usage.recorded`) and reads (`tenant.state`)."""
        return gateway_asyncapi()

    return router


def gateway_asyncapi() -> dict[str, Any]:
    document = asyncapi_document(title="Stellara gateway events")
    keep = {topics.USAGE_RECORDED.replace(".", "_"), topics.TENANT_STATE.replace(".", "_")}
    document["channels"] = {k: v for k, v in document["channels"].items() if k in keep}
    operations = {}
    for channel in sorted(keep):
        action = "send" if channel == topics.USAGE_RECORDED.replace(".", "_") else "receive"
        operation = dict(document["operations"][f"publish_{channel}"], action=action)
        operations[f"{action}_{channel}"] = operation
    document["operations"] = operations
    return document
