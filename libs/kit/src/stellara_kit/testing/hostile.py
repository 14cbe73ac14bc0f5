"""Hostile requests for every operation of an app's OpenAPI document (regression tests).

For each operation a baseline request is built from its schema (path parameters
from real objects the test names, a body with every property the schema
lists), then one value at a time is replaced by something a database or a JSON
peer cannot take: NUL characters and lone surrogates in strings, keys, query and
path parameters and headers; ``NaN``/``Infinity``/``-Infinity``/``1e999`` and
integers past int32/int64 wherever the body holds a value; dates at the ends of
the calendar in date parameters and fields; an oversized body. A service must
answer each with a 4xx problem+json, never a 5xx.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

PLACEHOLDER = "\x01hostile\x01"
NUL = "a\x00b"

#: raw JSON spellings put where the body holds a value
VALUE_TOKENS: dict[str, str] = {
    "nan": "NaN",
    "infinity": "Infinity",
    "-infinity": "-Infinity",
    "1e999": "1e999",
    "int32+1": str(2**31),
    "int64+1": str(2**63),
    "nul": json.dumps(NUL),
    "surrogate": '"\\ud800"',
    "nul-key": json.dumps({"a\x00": 1}),
    "nested-nan": '{"a": [NaN]}',
}
STRING_TOKENS = {"nul": json.dumps(NUL), "surrogate": '"\\ud800"'}
INTEGER_TOKENS = {k: VALUE_TOKENS[k] for k in ("int32+1", "int64+1", "1e999", "nan")}
#: instants at the ends of the calendar whose UTC time lies past them
DATE_TOKENS = {
    "date-min": '"0001-01-01"',
    "date-max": '"9999-12-31"',
    "instant-min": '"0001-01-01T00:00:00+14:00"',
    "instant-max": '"9999-12-31T23:59:59-12:00"',
    "instant-max-utc": '"9999-12-31T23:59:59.999999Z"',
    "instant-naive": '"2030-01-01T00:00:00"',
}
QUERY_INTEGERS = {"int32+1": str(2**31), "int64+1": str(2**63), "1e999": "1e999", "nan": "NaN"}
QUERY_DATES = {
    "date-min": "0001-01-01",
    "date-max": "9999-12-31",
    "instant-min": "0001-01-01T00:00:00+14:00",
    "instant-max": "9999-12-31T23:59:59-12:00",
    "instant-max-utc": "9999-12-31T23:59:59.999999Z",
    "huge-year": "99999-01-01",
}
#: query parameters that hold dates or instants whatever their schema says
DATE_PARAMETERS = frozenset({"from", "to", "since", "until", "before", "after", "at"})
OVERSIZED_BYTES = 4 * 1024 * 1024
_UUID = "5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11"


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


#: cursors shaped like the services' own (base64 of a JSON list, or of ``instant|id``)
#: holding what the database cannot take
QUERY_CURSORS = {
    "cursor-nul": _b64(json.dumps([NUL])),
    "cursor-nul-pair": _b64(json.dumps(["2026-12-01T00:00:00+00:00", NUL])),
    "cursor-huge-int": _b64(json.dumps(["9" * 40])),
    "cursor-unicode-digit": _b64(json.dumps(["\u00b2"])),
    "cursor-instant-max": _b64(json.dumps(["9999-12-31T23:59:59-12:00", _UUID])),
    "cursor-instant-min": _b64(json.dumps(["0001-01-01T00:00:00+14:00", _UUID])),
    "cursor-naive": _b64(json.dumps(["2026-12-01T00:00:00", _UUID])),
    "cursor-bar-max": _b64(f"9999-12-31T23:59:59-12:00|{_UUID}"),
    "cursor-bar-min": _b64(f"0001-01-01T00:00:00+14:00|{_UUID}"),
    "cursor-bar-naive": _b64(f"2026-12-01T00:00:00|{_UUID}"),
}


@dataclass(frozen=True)
class HostileRequest:
    case: str
    method: str
    template: str
    #: the path parameter that holds a NUL, if any
    nul_parameter: str | None = None
    params: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None

    @property
    def id(self) -> str:
        return f"{self.method} {self.template} {self.case}"

    def path(self, values: Mapping[str, str]) -> str:
        """The path, its parameters taken from ``values`` (real objects), one maybe hostile."""
        path = self.template
        for name in _path_names(self.template):
            value = NUL if name == self.nul_parameter else values.get(name, "x")
            path = path.replace("{" + name + "}", quote(value, safe=""))
        return path


class _Schemas:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.components = document.get("components", {}).get("schemas", {})

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 20:
            schema = self.components[schema["$ref"].rsplit("/", 1)[-1]]
            seen += 1
        for union in ("anyOf", "oneOf"):
            if union in schema:
                options = [self.resolve(s) for s in schema[union]]
                concrete = [s for s in options if s.get("type") != "null"]
                return concrete[0] if concrete else options[0]
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return self.resolve(schema["allOf"][0])
        return schema

    def sample(self, schema: Mapping[str, Any], depth: int = 0) -> Any:
        """A value the schema accepts, every object property included."""
        schema = self.resolve(schema)
        for example_key in ("examples", "example"):
            if example_key in schema:
                example = schema[example_key]
                return example[0] if example_key == "examples" and example else example
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][0]
        if "default" in schema and schema["default"] is not None and depth > 0:
            return schema["default"]
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            if depth > 6:
                return {}
            return {
                name: self.sample(prop, depth + 1)
                for name, prop in schema.get("properties", {}).items()
            }
        if kind == "array":
            return [self.sample(schema.get("items", {}), depth + 1)]
        if kind == "integer":
            return int(schema.get("minimum", 1))
        if kind == "number":
            return float(schema.get("minimum", 1))
        if kind == "boolean":
            return True
        if kind == "string":
            fmt = schema.get("format")
            if fmt == "uuid":
                return "5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11"
            if fmt == "date-time":
                return "2026-12-01T00:00:00Z"
            if fmt == "date":
                return "2026-12-01"
            if fmt == "email":
                return "probe@example.com"
            return "x" * max(int(schema.get("minLength", 1)), 1)
        return "x"

    def leaves(
        self, schema: Mapping[str, Any], where: tuple[str | int, ...] = (), depth: int = 0
    ) -> Iterator[tuple[tuple[str | int, ...], Mapping[str, Any]]]:
        """Every place in a sample body, with the schema found there (the root included)."""
        schema = self.resolve(schema)
        yield where, schema
        if depth > 6:
            return
        if schema.get("type") == "object" or "properties" in schema:
            for name, prop in schema.get("properties", {}).items():
                yield from self.leaves(prop, (*where, name), depth + 1)
        elif schema.get("type") == "array":
            yield from self.leaves(schema.get("items", {}), (*where, 0), depth + 1)


def _tokens_for(schema: Mapping[str, Any]) -> dict[str, str]:
    kind = schema.get("type")
    fmt = schema.get("format")
    if fmt in ("date", "date-time"):
        return {**DATE_TOKENS, **STRING_TOKENS}
    if kind == "string":
        return STRING_TOKENS
    if kind == "integer":
        return INTEGER_TOKENS
    if kind == "boolean":
        return {}
    if kind in ("object", "array") and not (schema.get("additionalProperties") or kind == "array"):
        return {"nul-key": VALUE_TOKENS["nul-key"]} if kind == "object" else {}
    return VALUE_TOKENS  # numbers and values of any type


def _with_placeholder(body: Any, where: tuple[str | int, ...]) -> Any:
    if not where:
        return PLACEHOLDER
    head, *rest = where
    if isinstance(body, dict):
        return {**body, head: _with_placeholder(body.get(head), tuple(rest))}
    if isinstance(body, list):
        items = list(body) or [None]
        assert isinstance(head, int)
        items[head] = _with_placeholder(items[head], tuple(rest))
        return items
    return {head: _with_placeholder(None, tuple(rest))}


def hostile_requests(
    document: Mapping[str, Any],
    *,
    bodies: Mapping[str, Any] | None = None,
    skip: frozenset[str] = frozenset({"/healthz", "/readyz", "/metrics"}),
) -> list[HostileRequest]:
    """Hostile requests for every operation; writes come after reads, deletes last.

    ``bodies`` (keyed ``"POST /tenants"``) are valid bodies to start from where the
    schema's own example would be refused by a rule, so hostile values reach deeper.
    """
    schemas = _Schemas(document)
    found: list[HostileRequest] = []
    for template, operations in document.get("paths", {}).items():
        if template in skip:
            continue
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            baseline = (bodies or {}).get(f"{method.upper()} {template}")
            found.extend(
                _operation_requests(schemas, template, method.upper(), operation, baseline)
            )
    order = {"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}
    # deeper deletes first: deleting the tenant itself comes last of all
    found.sort(
        key=lambda r: (order[r.method], -r.template.count("/") if r.method == "DELETE" else 0)
    )
    return found


def _path_names(template: str) -> list[str]:
    return [
        part[1:-1] for part in template.split("/") if part.startswith("{") and part.endswith("}")
    ]


def _operation_requests(
    schemas: _Schemas,
    template: str,
    method: str,
    operation: Mapping[str, Any],
    valid_body: Any = None,
) -> Iterator[HostileRequest]:
    body_schema: Mapping[str, Any] | None = None
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        body_schema = content["application/json"].get("schema", {})
    baseline = valid_body
    if baseline is None and body_schema is not None:
        baseline = schemas.sample(body_schema)
    json_headers = {"content-type": "application/json"} if body_schema is not None else {}
    base_content = json.dumps(baseline).encode() if body_schema is not None else None

    def request(case: str, **changes: Any) -> HostileRequest:
        values: dict[str, Any] = {
            "method": method,
            "template": template,
            "headers": dict(json_headers),
            "content": base_content,
        }
        values.update(changes)
        return HostileRequest(case=case, **values)

    for name in _path_names(template):
        yield request(f"path.{name}=nul", nul_parameter=name)
    for parameter in operation.get("parameters", []):
        where, name = parameter["in"], parameter["name"]
        schema = schemas.resolve(parameter.get("schema", {}))
        if where == "query":
            yield request(f"query.{name}=nul", params=[(name, NUL)])
            if name == "cursor":
                for case, value in QUERY_CURSORS.items():
                    yield request(f"query.{name}={case}", params=[(name, value)])
            if schema.get("type") == "integer":
                for case, value in QUERY_INTEGERS.items():
                    yield request(f"query.{name}={case}", params=[(name, value)])
            if name in DATE_PARAMETERS or schema.get("format") in ("date", "date-time"):
                for case, value in QUERY_DATES.items():
                    yield request(f"query.{name}={case}", params=[(name, value)])
                other = "to" if name == "from" else "from" if name == "to" else None
                if other:
                    yield request(
                        f"query.{name}+{other}=calendar-ends",
                        params=[("from", "0001-01-01"), ("to", "9999-12-31")],
                    )
        elif where == "header":
            yield request(f"header.{name}=nul", headers={**json_headers, name: NUL})
    documented = {p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"}
    if method != "GET":
        # read by writes whether or not the operation documents them
        for name in ("Idempotency-Key", "If-Match"):
            if name.lower() not in documented:
                yield request(f"header.{name}=nul", headers={**json_headers, name: NUL})
    if body_schema is None:
        return
    for where, schema in schemas.leaves(body_schema):
        for case, token in _tokens_for(schema).items():
            text = json.dumps(_with_placeholder(baseline, where))
            text = text.replace(json.dumps(PLACEHOLDER), token)
            label = ".".join(["body", *(str(w) for w in where)])
            yield request(f"{label}={case}", content=text.encode())
    filler = json.dumps({"padding": "x" * OVERSIZED_BYTES}).encode()
    yield request("body=oversized", content=filler)


def refusal_problem(response: Any) -> str | None:
    """What is wrong with the answer to a hostile request (None: a 4xx problem, or a success)."""
    status = int(response.status_code)
    if status < 400:
        return None
    kind = response.headers.get("content-type", "")
    if status >= 500 or not kind.startswith("application/problem+json"):
        return f"{status} {kind}: {response.text[:300]}"
    return None
