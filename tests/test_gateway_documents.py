"""The gateway documents each forwarded route exactly as its owning service does."""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

import pytest

from gateway.main import create_app
from gateway.openapi import gateway_refusals
from gateway.routes import ROUTES, Service
from stellara_cli.docs import SERVICE_OPENAPI, render_service_openapi
from stellara_kit.problems import PROBLEM_JSON

FORWARDED = [r for r in ROUTES if r.service is not Service.GATEWAY]
_PACKAGES = {
    "tenant-svc": "tenant_svc",
    "usage-svc": "usage_svc",
    "onboarding-svc": "onboarding_svc",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return {
        name: importlib.import_module(f"{package}.main").create_app().openapi()
        for name, package in _PACKAGES.items()
    }


def _service_operation(services: dict[str, Any], route: Any) -> dict[str, Any]:
    shape = re.sub(r"\{[^}]+\}", "{}", route.path)
    paths = services[str(route.service)]["paths"]
    (path,) = [p for p in paths if re.sub(r"\{[^}]+\}", "{}", p) == shape]
    return paths[path][route.method.lower()]


def test_the_checked_in_service_operations_match_the_services() -> None:
    assert SERVICE_OPENAPI.read_text() == render_service_openapi(), "run `make docs` to refresh"


@pytest.mark.parametrize("route", FORWARDED, ids=lambda r: f"{r.method} {r.path}")
def test_a_forwarded_operation_says_what_its_service_says(
    route: Any, document: dict[str, Any], services: dict[str, Any]
) -> None:
    ours = document["paths"][route.path][route.method.lower()]
    theirs = _service_operation(services, route)
    assert ours["summary"] == theirs["summary"]
    # same query and header parameters, with the service's constraints
    named = {(p["in"], p["name"]): p["schema"] for p in ours.get("parameters", [])}
    for parameter in theirs.get("parameters", []):
        if parameter["in"] in ("query", "header"):
            assert (parameter["in"], parameter["name"]) in named, parameter["name"]
            kept = json.dumps(named[(parameter["in"], parameter["name"])], sort_keys=True)
            for word in ("pattern", "enum", "maxLength", "minimum", "maximum", "format"):
                assert (word in kept) == (word in json.dumps(parameter["schema"])), word
    assert ("requestBody" in ours) == ("requestBody" in theirs)
    if "requestBody" in theirs:
        assert set(ours["requestBody"]["content"]) == set(theirs["requestBody"]["content"])
        assert ours["requestBody"].get("required") == theirs["requestBody"].get("required")
    # every answer of the service, with its media types and headers, and the gateway's own
    for code, answer in theirs["responses"].items():
        assert code in ours["responses"], code
        assert set(ours["responses"][code].get("content") or {}) == set(
            answer.get("content") or {}
        ), code
        assert set(answer.get("headers", {})) <= set(ours["responses"][code].get("headers", {}))
    for code in gateway_refusals(route):
        answer = ours["responses"][str(code)]
        assert answer["content"][PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}
        if code in (429, 503):
            assert "Retry-After" in answer["headers"]
    assert "**Roles:**" in ours["description"]
    assert ours["x-roles"] == route.roles_text()


def test_every_refusal_is_problem_json_and_every_reference_resolves(
    document: dict[str, Any],
) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for code, answer in operation["responses"].items():
                if int(code) >= 400:
                    assert PROBLEM_JSON in answer["content"], f"{method} {path} {code}"
                    assert set(answer["content"]) == {PROBLEM_JSON}, f"{method} {path} {code}"
    text = json.dumps(document)
    for name in set(re.findall(r"#/components/schemas/([A-Za-z0-9_.-]+)", text)):
        assert name in document["components"]["schemas"], name
    assert "HTTPValidationError" not in text


class TestWhatAClientReliesOn:
    def test_headers(self, document: dict[str, Any]) -> None:
        paths = document["paths"]
        create = paths["/tenants"]["post"]
        assert "Idempotency-Key" in {p["name"] for p in create["parameters"]}
        assert {"Location", "ETag", "Idempotent-Replayed"} <= set(
            create["responses"]["201"]["headers"]
        )
        update = paths["/tenants/{id}"]["put"]
        assert "If-Match" in {p["name"] for p in update["parameters"]}
        assert "ETag" in paths["/tenants/{id}"]["get"]["responses"]["200"]["headers"]
        assert "ETag" in paths["/tenants/{id}/config/{key}"]["get"]["responses"]["200"]["headers"]
        assert "412" in update["responses"]

    def test_usage_queries_take_what_usage_svc_takes_and_answer_csv(
        self, document: dict[str, Any]
    ) -> None:
        daily = document["paths"]["/tenants/{id}/usage/daily"]["get"]
        parameters = {p["name"]: p for p in daily["parameters"]}
        assert {"from", "to", "tz", "window", "metric"} <= set(parameters)
        assert "included" in parameters["to"]["description"]
        assert parameters["window"]["schema"]["enum"] == ["hour", "day", "month"]
        assert set(daily["responses"]["200"]["content"]) == {"application/json", "text/csv"}
        summary = daily["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert summary.endswith("/UsageSeries")
        tenants = {p["name"] for p in document["paths"]["/tenants"]["get"]["parameters"]}
        assert {"plan", "q", "status", "cursor", "limit"} <= tenants

    def test_the_usage_summary_is_usage_svcs(self, document: dict[str, Any]) -> None:
        from usage_svc.schemas import UsageSummary

        usage = document["paths"]["/tenants/{id}/usage"]["get"]["responses"]["200"]
        target = usage["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        fields = document["components"]["schemas"][target]["properties"]
        assert set(fields) == set(UsageSummary.model_json_schema(by_alias=True)["properties"])

    def test_onboarding_takes_no_body(self, document: dict[str, Any]) -> None:
        assert "requestBody" not in document["paths"]["/tenants/{id}/onboard"]["post"]

    def test_constraints_the_services_enforce(self, document: dict[str, Any]) -> None:
        schemas = document["components"]["schemas"]
        invitation = document["paths"]["/tenants/{id}/invitations/{invitation_id}"]["get"]
        (param,) = [p for p in invitation["parameters"] if p["name"] == "invitation_id"]
        assert param["schema"]["format"] == "uuid"
        assert "pattern" in json.dumps(schemas["ConfigSet"]["properties"]["key"])
        config_key = document["paths"]["/tenants/{id}/config/{key}"]["get"]["parameters"]
        (key,) = [p for p in config_key if p["name"] == "key"]
        assert key["schema"]["pattern"].startswith("^(?:general|")
        assert "enum" in json.dumps(schemas["ConfigSet"]) or "$ref" in json.dumps(
            schemas["ConfigSet"]["properties"]["category"]
        )
        assert schemas["UsageEventIn"]["properties"]["metric"]["pattern"]

    def test_ingestion_documents_one_json_body_a_generator_can_use(
        self, document: dict[str, Any]
    ) -> None:
        body = document["paths"]["/usage/events"]["post"]["requestBody"]
        assert body["required"] is True
        json_bodies = [t for t in body["content"] if t.endswith(("/json", "+json"))]
        assert json_bodies == ["application/json"]
        batch = document["components"]["schemas"]["UsageBatch"]
        assert batch["type"] == "object" and batch["required"] == ["events"]
        ndjson = body["content"]["application/x-ndjson"]["schema"]
        assert ndjson["items"] == {"$ref": "#/components/schemas/UsageEventIn"}
