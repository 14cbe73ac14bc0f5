"""The gateway documents each forwarded route with what its owning service really answers."""

from __future__ import annotations

import json
import re

from gateway.api import service_openapi
from gateway.main import create_app
from gateway.routes import ROUTES, Service
from stellara_cli.docs import SERVICE_OPENAPI, render_service_openapi


def test_the_checked_in_service_answers_match_the_services() -> None:
    assert SERVICE_OPENAPI.read_text() == render_service_openapi(), "run `make docs` to refresh"


def test_every_forwarded_route_exists_downstream_with_the_query_the_gateway_names() -> None:
    documented = service_openapi()["operations"]
    for route in ROUTES:
        if route.service is Service.GATEWAY:
            continue
        entry = documented[f"{route.method} {route.path}"]
        named = {q.name for q in route.query}
        assert named <= set(entry["query"]), f"{route.method} {route.path}: {named}"


def test_the_gateway_openapi_shows_the_services_answers() -> None:
    document = create_app().openapi()
    usage = document["paths"]["/tenants/{id}/usage"]["get"]["responses"]["200"]
    schema = usage["content"]["application/json"]["schema"]
    target = schema["$ref"].rsplit("/", 1)[-1]
    assert target in document["components"]["schemas"]
    fields = document["components"]["schemas"][target]["properties"]
    assert {"tenant_id", "metrics"} <= set(fields)
    # every reference in the document resolves
    text = json.dumps(document)
    for name in set(re.findall(r"#/components/schemas/([A-Za-z0-9_.-]+)", text)):
        assert name in document["components"]["schemas"], name
