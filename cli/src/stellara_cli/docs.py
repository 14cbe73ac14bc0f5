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
    Path(__file__).resolve().parents[3] / "services/gateway/src/gateway/service_openapi.json"
)


_SCHEMA_REF = re.compile(r"#/components/schemas/([A-Za-z0-9_.-]+)")
_SERVICE_PACKAGES = (
    ("tenant-svc", "tenant_svc"),
    ("usage-svc", "usage_svc"),
    ("onboarding-svc", "onboarding_svc"),
)
#: what an operation of a service says that the gateway copies (the gateway adds its own
#: operation id, security, roles and the refusals it answers itself)
_OPERATION_FIELDS = ("summary", "description", "tags", "parameters", "requestBody", "responses")


def _schema_prefix(service: str) -> str:
    """``tenant-svc`` → ``TenantSvc``: keeps the services' schema names apart."""
    return "".join(part.title() for part in service.split("-"))


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _renamed_refs(node: Any, names: dict[str, str]) -> Any:
    """``node`` with its schema references renamed as in ``names``."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            match = (
                _SCHEMA_REF.fullmatch(value) if key == "$ref" and isinstance(value, str) else None
            )
            if match is not None and match.group(1) in names:
                out[key] = "#/components/schemas/" + names[match.group(1)]
            else:
                out[key] = _renamed_refs(value, names)
        return out
    if isinstance(node, list):
        return [_renamed_refs(item, names) for item in node]
    return node


def _component_names(documents: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per service, its schema name → the name in the gateway's document.

    A name keeps its own spelling when every service that has it means the same schema
    (``Problem``, a shared contract model); otherwise it gets its service's prefix
    (``TenantSvcTenantOut``)."""
    seen: dict[str, list[str]] = {}
    for document in documents.values():
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            seen.setdefault(name, []).append(json.dumps(schema, sort_keys=True))
    shared = {name for name, bodies in seen.items() if len(set(bodies)) == 1}
    return {
        service: {
            name: name if name in shared else _schema_prefix(service) + name
            for name in document.get("components", {}).get("schemas", {})
        }
        for service, document in documents.items()
    }


def _gateway_path_parameters(service_path: str, gateway_path: str) -> dict[str, str]:
    """The service's path parameter names → the gateway's (same places in the path)."""
    out = {}
    for theirs, ours in zip(service_path.split("/"), gateway_path.split("/"), strict=True):
        if theirs.startswith("{"):
            out[theirs[1:-1]] = ours[1:-1]
    return out


def _with_examples(
    operation: dict[str, Any], document: dict[str, Any], validator_for: Any
) -> dict[str, Any]:
    """Every JSON answer and body with an example: the service's own, else one assembled from
    the field examples of its schema when that is a valid instance."""
    contents = [
        content
        for response in operation.get("responses", {}).values()
        for content in (response.get("content") or {}).values()
    ]
    contents += list((operation.get("requestBody") or {}).get("content", {}).values())
    for content in contents:
        schema = content.get("schema")
        if schema is None or "example" in content or "examples" in content:
            continue
        candidate = _example_from_schema(schema, document, depth=0)
        if candidate is not None and validator_for(schema).is_valid(candidate):
            content["example"] = candidate
    return operation


def render_service_openapi() -> str:
    """Every operation the gateway forwards, as its owning service documents it.

    Parameters (with their constraints), request bodies, every answer with its media
    types, headers and examples come from the service's own OpenAPI document; the
    gateway adds what it decides itself (security, roles, its own refusals) when it
    builds its document. ``make docs`` refreshes the file and a test keeps it current.
    """
    import jsonschema

    from gateway.downstream import FORWARDED_REQUEST_HEADERS
    from gateway.routes import ROUTES, Service

    documents: dict[str, dict[str, Any]] = {}
    for name, package in _SERVICE_PACKAGES:
        module = importlib.import_module(f"{package}.main")
        documents[name] = module.create_app().openapi()
    names = _component_names(documents)
    forwarded_headers = {h.lower() for h in FORWARDED_REQUEST_HEADERS}

    operations: dict[str, Any] = {}
    components: dict[str, Any] = {}
    for route in ROUTES:
        if route.service is Service.GATEWAY:
            continue
        service = str(route.service)
        document = documents[service]
        by_shape = {_normalise(path): path for path in document["paths"]}
        service_path = by_shape.get(_normalise(route.path))
        operation = (
            document["paths"].get(service_path, {}).get(route.method.lower())
            if service_path
            else None
        )
        if service_path is None or operation is None:
            raise LookupError(f"{service} has no {route.method} {route.path}")

        def validator_for(schema: dict[str, Any], document: dict[str, Any] = document) -> Any:
            return jsonschema.Draft202012Validator(
                {**schema, "components": document.get("components", {})}
            )

        copied = {
            key: json.loads(json.dumps(operation[key]))
            for key in _OPERATION_FIELDS
            if key in operation
        }
        copied = _with_examples(copied, document, validator_for)
        renamed = _gateway_path_parameters(service_path, route.path)
        parameters = []
        for parameter in copied.get("parameters", []):
            if parameter["in"] == "path":
                parameter["name"] = renamed[parameter["name"]]
            elif parameter["in"] == "header" and parameter["name"].lower() not in forwarded_headers:
                continue  # the gateway does not pass it on
            parameters.append(parameter)
        if parameters:
            copied["parameters"] = parameters
        copied["x-service-path"] = service_path
        operations[f"{route.method} {route.path}"] = _renamed_refs(copied, names[service])
    for service, document in documents.items():
        for schema_name, schema in document.get("components", {}).get("schemas", {}).items():
            components[names[service][schema_name]] = _renamed_refs(schema, names[service])
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
    if (
        schema.get("examples")
        and "properties" in schema
        and isinstance(schema["examples"][0], dict)
    ):
        # a model's own example may leave out fields that are null: fill them from the fields'
        assembled = {
            name: _example_from_schema(field, document, depth + 1)
            for name, field in schema["properties"].items()
        }
        return {**assembled, **schema["examples"][0]}
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
