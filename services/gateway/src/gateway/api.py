"""The gateway's HTTP routes, declared one by one from the route table.

Each public route gets its own endpoint (path and query parameters, summary,
roles, request and response schemas with examples), so `/docs` shows the
whole public API; every endpoint hands the request to the gateway pipeline.
There is no catch-all: a path that is not in the table is 404.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, cast

from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from gateway import schemas
from gateway.ingestion import CLOUDEVENTS_BATCH
from gateway.routes import ROUTES, Route, Service, TenantContext
from gateway.service import Gateway
from stellara_contracts import topics
from stellara_contracts.events import UsageRecordedEvent
from stellara_contracts.generate import asyncapi_document
from stellara_kit.problems import problem_openapi, problem_responses

_PATH_DESCRIPTIONS = {
    "id": "The tenant: its id or its slug.",
    "key": "A configuration key, `category.key`.",
    "user_id": "The member's user id.",
    "key_id": "The API key's id.",
    "invitation_id": "The invitation's id.",
    "token": "The invitation token from the invitation mail.",
}
_PATH_EXAMPLES = {"id": schemas.TENANT}

Endpoint = Callable[..., Awaitable[Response]]


def _path_params(route: Route) -> list[str]:
    return [part[1:-1] for part in route.path.split("/") if part.startswith("{")]


def _endpoint(route: Route) -> Endpoint:
    async def endpoint(request: Request, **_: Any) -> Response:
        gateway: Gateway = request.app.state.gateway
        return await gateway.handle(route, request)

    parameters = [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
    ]
    for name in _path_params(route):
        example = route.path_examples.get(name) or _PATH_EXAMPLES.get(name, name)
        parameters.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=str,
                default=Path(description=_PATH_DESCRIPTIONS.get(name, name), examples=[example]),
            )
        )
    for param in route.query:
        parameters.append(
            inspect.Parameter(
                param.name.replace("-", "_") + "_",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=str | None,
                default=Query(
                    None,
                    alias=param.name,
                    description=param.description,
                    examples=[param.example] if param.example else None,
                ),
            )
        )
    endpoint.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    endpoint.__name__ = route.operation_id
    return endpoint


def _description(route: Route) -> str:
    served = "the gateway itself" if route.service is Service.GATEWAY else f"`{route.service}`"
    text = f"**Roles:** {route.roles_text()}.\n\n**Served by:** {served}."
    if route.description:
        text = f"{route.description}\n\n{text}"
    return text


def _request_body(route: Route) -> dict[str, Any] | None:
    if route.service is Service.GATEWAY:
        event_example = schemas.UsageEventIn.model_config["json_schema_extra"]["examples"][0]
        return {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/UsageEventIn"},
                        "maxItems": 1000,
                    },
                    "example": [event_example],
                },
                "application/x-ndjson": {
                    "schema": {"type": "string", "description": "One UsageEventIn a line."},
                    "example": '{"metric": "workflow_runs", "value": 1, "occurred_at": "2026-12-01T10:00:00Z"}\n',
                },
                CLOUDEVENTS_BATCH: {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/UsageRecordedEvent"},
                        "maxItems": 1000,
                    },
                    "example": [
                        {
                            "specversion": "1.0",
                            "id": schemas.EVENT,
                            "source": "billing-worker",
                            "type": "stellara.usage.recorded.v1",
                            "tenantid": schemas.TENANT,
                            "time": schemas.WHEN,
                            "datacontenttype": "application/json",
                            "data": {
                                "tenant_id": schemas.TENANT,
                                "metric": "workflow_runs",
                                "value": 1,
                                "occurred_at": schemas.WHEN,
                                "properties": {},
                            },
                        }
                    ],
                },
            },
        }
    if route.request_model is None:
        return None
    model = route.request_model
    examples = (model.model_config.get("json_schema_extra") or {}).get("examples") or []
    content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    if examples:
        content["example"] = examples[0]
    return {"required": True, "content": {"application/json": content}}


@functools.cache
def service_openapi() -> dict[str, Any]:
    """What the owning services answer on the forwarded routes (generated by ``make docs``)."""
    return cast(
        dict[str, Any],
        json.loads(resources.files("gateway").joinpath("service_openapi.json").read_text()),
    )


def _responses(route: Route) -> dict[int | str, dict[str, Any]]:
    success: dict[str, Any] = {"description": route.summary}
    documented = service_openapi()["operations"].get(f"{route.method} {route.path}")
    if documented is not None:
        # the owning service's own answer schema and example: the gateway passes it through
        if "schema" in documented:
            content: dict[str, Any] = {"schema": documented["schema"]}
            if "example" in documented:
                content["example"] = documented["example"]
            success["content"] = {"application/json": content}
    else:
        if route.response_model is not None:
            success["model"] = route.response_model
        if route.response_example is not None:
            success["content"] = {"application/json": {"example": route.response_example}}
    errors = [401, 403, 429, 503, 504]
    if route.context is not TenantContext.NONE:
        errors.append(404)
    if not route.is_read:
        errors += [413, 422]
    if route.service is Service.GATEWAY:
        errors.append(415)
    if _path_params(route):
        errors.append(400)  # a parameter making a dot segment or holding an encoded `/`: bad-path
    return {route.status_code: success, **problem_responses(*sorted(set(errors)))}


def _openapi_extra(route: Route) -> dict[str, Any]:
    security: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    if route.api_key_scopes:
        security += [{"apiKeyHeader": []}, {"apiKeyAuthorization": []}]
    extra: dict[str, Any] = {
        "security": security,
        "x-roles": route.roles_text(),
        "x-service": str(route.service),
    }
    body = _request_body(route)
    if body is not None:
        extra["requestBody"] = body
    return extra


def build_router(routes: tuple[Route, ...] = ROUTES) -> APIRouter:
    router = APIRouter()
    for route in routes:
        router.add_api_route(
            route.path,
            _endpoint(route),
            methods=[route.method],
            summary=route.summary,
            description=_description(route),
            tags=[route.tag],
            status_code=route.status_code,
            response_model=None,
            responses=_responses(route),
            openapi_extra=_openapi_extra(route),
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


def _component_schemas() -> dict[str, Any]:
    """Schemas of the request models (the gateway documents bodies without parsing them)."""
    models: list[type[BaseModel]] = [r.request_model for r in ROUTES if r.request_model]
    models += [schemas.UsageEventIn, UsageRecordedEvent]
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def install_openapi(app: FastAPI) -> None:
    """Add the request schemas and the security schemes to the generated document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = document.setdefault("components", {})
        found = components.setdefault("schemas", {})
        for name, schema in _component_schemas().items():
            found.setdefault(name, schema)
        for name, schema in service_openapi()["components"].items():
            found.setdefault(name, schema)
        components["securitySchemes"] = {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A user token (`stellara token` mints one for development).",
            },
            "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "apiKeyAuthorization": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`ApiKey <key>`",
            },
        }
        app.openapi_schema = problem_openapi(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
