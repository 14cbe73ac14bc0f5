"""Generated parts of the README: configuration tables from the settings classes and the
public route table from the gateway's own route table.

``make docs`` rewrites the README between the ``<!-- config:… -->`` and
``<!-- api:… -->`` markers; a test fails while they differ.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_core import PydanticUndefined

from stellara_cli.stack import service_specs

START, END = "<!-- config:start -->", "<!-- config:end -->"


def _default(field: Any) -> str:
    value = field.default
    if value is PydanticUndefined:
        return "*(required)*" if field.default_factory is None else "*(computed)*"
    if isinstance(value, SecretStr):
        return "*(secret; dev placeholder)*"
    if value is None:
        return "*(unset)*"
    if value == "":
        return "*(empty)*"
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        text = json.dumps(
            sorted(value) if isinstance(value, (set, frozenset)) else value, default=str
        )
        return f"`{text}`" if len(text) <= 60 else "*(see settings.py)*"
    return f"`{value}`"


def settings_table(service: str, package: str) -> str:
    cls = importlib.import_module(f"{package}.settings").Settings
    prefix = cls.model_config.get("env_prefix", "")
    rows = [
        f"#### {service} (`{prefix}*`)",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for name, field in cls.model_fields.items():
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{prefix}{name.upper()}` | {_default(field)} | {description} |")
    return "\n".join(rows)


SETTINGS_START, SETTINGS_END = "<!-- settings:start -->", "<!-- settings:end -->"


def render_service_settings(service: str, package: str) -> str:
    """A service README's settings table, between its markers."""
    table = settings_table(service, package).split("\n", 2)[2]  # without the heading
    return "\n".join([SETTINGS_START, table, SETTINGS_END])


def service_readmes(root: Path) -> list[tuple[Path, str]]:
    """Each service README with its generated settings section."""
    return [
        (
            root / "services" / spec.name / "README.md",
            render_service_settings(spec.name, spec.package),
        )
        for spec in service_specs()
        if (root / "services" / spec.name / "README.md").exists()
    ]


def render_config_section() -> str:
    tables = [settings_table(spec.name, spec.package) for spec in service_specs()]
    return "\n\n".join([START, *tables, END])


API_START, API_END = "<!-- api:start -->", "<!-- api:end -->"

_ACCESS_TEXT = {
    "platform_admin": "platform_admin",
    "tenant_admin": "tenant_admin of the tenant",
    "tenant_read": "any member of the tenant (user, tenant_admin)",
    "authenticated": "anyone signed in",
    "usage_write": "tenant_admin, or an API key with `usage:write`",
    "invitee": "the invited person (signed in)",
}


def render_api_section() -> str:
    """The public route table, from the gateway's own route table."""
    from gateway.routes import ROUTES

    rows = [
        API_START,
        "| method | path | who may call it (platform_admin always may) | API key scopes | served by |",
        "|---|---|---|---|---|",
    ]
    for route in ROUTES:
        scopes = ", ".join(f"`{s}`" for s in sorted(route.api_key_scopes)) or "—"
        who = _ACCESS_TEXT.get(str(route.access), str(route.access))
        rows.append(f"| `{route.method}` | `{route.path}` | {who} | {scopes} | {route.service} |")
    rows.append(API_END)
    return "\n".join(rows)


def _replace(text: str, start: str, end: str, body: str) -> str:
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"the README has no {start} … {end} section")
    return pattern.sub(lambda _: body, text)


def update_all(readme: Path) -> bool:
    text = readme.read_text()
    updated = _replace(text, START, END, render_config_section())
    updated = _replace(updated, API_START, API_END, render_api_section())
    for path, settings in service_readmes(readme.resolve().parent):
        current = path.read_text()
        if SETTINGS_START not in current:
            continue  # a test asks for the markers
        refreshed = _replace(current, SETTINGS_START, SETTINGS_END, settings)
        if refreshed != current:
            path.write_text(refreshed)
    service_openapi = render_service_openapi()
    if not SERVICE_OPENAPI.exists() or SERVICE_OPENAPI.read_text() != service_openapi:
        SERVICE_OPENAPI.write_text(service_openapi)
    if updated != text:
        readme.write_text(updated)
        return True
    return False


def section(readme: Path, start: str, end: str) -> str | None:
    match = re.search(re.escape(start) + ".*?" + re.escape(end), readme.read_text(), re.DOTALL)
    return match.group(0) if match else None


# ---------------------------------------------------------------- the gateway's view of the services
SERVICE_OPENAPI = (
    Path(__file__).resolve().parents[4] / "services/gateway/src/gateway/service_openapi.json"
)


_SCHEMA_REF = re.compile(r"#/components/schemas/([A-Za-z0-9_.-]+)")


def _schema_prefix(service: str) -> str:
    """``tenant-svc`` → ``TenantSvc``: keeps the services' schema names apart."""
    return "".join(part.title() for part in service.split("-"))


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _prefixed_refs(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                value.replace("#/components/schemas/", f"#/components/schemas/{prefix}")
                if key == "$ref" and isinstance(value, str)
                else _prefixed_refs(value, prefix)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_prefixed_refs(item, prefix) for item in node]
    return node


def render_service_openapi() -> str:
    """The owning services' answer schemas and examples for every route the gateway forwards.

    The gateway documents forwarded routes with these, so its OpenAPI says exactly what the
    services answer; ``make docs`` refreshes the file and a test keeps it current.
    """
    import jsonschema

    from gateway.routes import ROUTES, Service

    documents: dict[str, dict[str, Any]] = {}
    for name, package in (
        ("tenant-svc", "tenant_svc"),
        ("usage-svc", "usage_svc"),
        ("onboarding-svc", "onboarding_svc"),
    ):
        module = importlib.import_module(f"{package}.main")
        documents[name] = module.create_app().openapi()

    operations: dict[str, Any] = {}
    components: dict[str, Any] = {}
    for route in ROUTES:
        if route.service is Service.GATEWAY:
            continue
        service = str(route.service)
        document = documents[service]
        prefix = _schema_prefix(service)
        by_shape = {_normalise(path): item for path, item in document["paths"].items()}
        operation = by_shape.get(_normalise(route.path), {}).get(route.method.lower())
        if operation is None:
            raise LookupError(f"{service} has no {route.method} {route.path}")
        answer = operation["responses"].get(str(route.status_code))
        if answer is None:
            raise LookupError(
                f"{service} {route.method} {route.path} does not answer {route.status_code}"
            )
        content = (answer.get("content") or {}).get("application/json") or {}
        entry: dict[str, Any] = {
            "query": sorted(
                p["name"] for p in operation.get("parameters", []) if p["in"] == "query"
            )
        }
        if "schema" in content:
            entry["schema"] = _prefixed_refs(content["schema"], prefix)
            # the service's own example, else the gateway's if it is a valid answer, else
            # one assembled from the schema's field examples if that is valid
            validator = jsonschema.Draft202012Validator(
                {**content["schema"], "components": document.get("components", {})}
            )
            example = content.get("example")
            if example is None and route.response_example is not None:
                candidate = json.loads(json.dumps(route.response_example, default=str))
                example = candidate if validator.is_valid(candidate) else None
            if example is None:
                candidate = _example_from_schema(content["schema"], document, depth=0)
                example = candidate if validator.is_valid(candidate) else None
            if example is not None:
                entry["example"] = example
        operations[f"{route.method} {route.path}"] = entry
    for service, document in documents.items():
        prefix = _schema_prefix(service)
        for schema_name, schema in document.get("components", {}).get("schemas", {}).items():
            components[f"{prefix}{schema_name}"] = _prefixed_refs(schema, prefix)
    used = json.dumps(operations)
    # keep only the components the operations reach (directly or through other components)
    reachable: dict[str, Any] = {}
    frontier = set(_SCHEMA_REF.findall(used))
    while frontier:
        name = frontier.pop()
        if name in reachable or name not in components:
            continue
        reachable[name] = components[name]
        frontier |= set(_SCHEMA_REF.findall(json.dumps(components[name])))
    body = {"operations": operations, "components": dict(sorted(reachable.items()))}
    return json.dumps(body, indent=1, sort_keys=True) + "\n"


_SCALARS: dict[str, Any] = {
    "date-time": "2026-12-01T10:00:00Z",
    "date": "2026-12-01",
    "uuid": "5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11",
    "email": "ada@acme.example",
}


def _example_from_schema(schema: dict[str, Any], document: dict[str, Any], depth: int) -> Any:
    """An example answer assembled from the field examples of the service's own schema."""
    if depth > 8:
        return None
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _example_from_schema(document["components"]["schemas"][name], document, depth + 1)
    if "example" in schema:
        return schema["example"]
    if schema.get("examples"):
        return schema["examples"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return _example_from_schema(options[0], document, depth + 1)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {
            name: _example_from_schema(field, document, depth + 1)
            for name, field in schema.get("properties", {}).items()
        }
    if kind == "array":
        return [_example_from_schema(schema.get("items", {}), document, depth + 1)]
    if kind == "string":
        return _SCALARS.get(schema.get("format", ""), "string")
    if kind in ("integer", "number"):
        return max(0, schema.get("minimum", 0))
    if kind == "boolean":
        return False
    return None
