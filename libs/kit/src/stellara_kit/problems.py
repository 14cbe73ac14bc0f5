"""RFC 9457 problem+json errors, mapped in one place for every FastAPI app.

Domain code raises :class:`Problem` (or a subclass); the handlers turn it,
request validation errors and HTTP errors into ``application/problem+json``.
Anything unexpected becomes a 500 problem without a stack trace (the trace
goes to the log with the request id) — except a database that cannot be
reached or dropped the connection (restarting, unreachable, cut off), which
is a 503 the client may retry: a write in flight may or may not have been
committed, so it says to retry with the same ``Idempotency-Key``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from stellara_kit.db import connection_lost
from stellara_kit.routing import route_template

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:stellara:problem:"


class Problem(Exception):
    """An error a client can act on, rendered as problem+json."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        self.status = status or self.status
        self.slug = slug or self.slug
        self.title = title or self.title
        self.detail = detail
        self.headers = headers
        self.extensions = extensions
        super().__init__(detail or self.title)

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"{PROBLEM_BASE}{self.slug}",
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(jsonable_encoder(self.extensions))
        return body


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class TenantNotFound(NotFound):
    """No such tenant (or another tenant's, which is not found either): one code everywhere."""

    slug, title = "tenant-not-found", "Tenant not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class Unprocessable(Problem):
    status, slug, title = 422, "unprocessable", "Unprocessable content"


class PreconditionFailed(Problem):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class RoleRequired(Forbidden):
    """The caller is signed in but lacks the role the route needs (same code everywhere)."""

    slug = "role-required"


class InsufficientScope(Forbidden):
    """An API key without a scope the route accepts (same code everywhere)."""

    slug = "insufficient-scope"


#: path parameters that carry a secret (an invitation token): never echoed in an answer
SECRET_PATH_PARAMS = frozenset({"token"})


def problem_instance(request: Request) -> str | None:
    """The problem's ``instance``: the request path, or the route template (``/invitations/{token}
    /accept``) when the path carries a secret; none when no route matched (an unknown path may
    be anything, a mistyped secret included)."""
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    if SECRET_PATH_PARAMS & (request.scope.get("path_params") or {}).keys():
        return template
    return request.url.path


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    instance = problem_instance(request) if request is not None else None
    return JSONResponse(
        problem.body(instance),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


class DatabaseUnavailable(Problem):
    status, slug, title = 503, "database-unavailable", "Database unavailable"


def internal_error_response(request: Request, exc: BaseException) -> JSONResponse:
    """A 500 problem that names the request id and nothing of the internals (they are logged);
    a 503 when the database could not be reached."""
    request_id = getattr(request.state, "request_id", None)
    if connection_lost(exc):
        log.warning(
            "database unavailable on %s %s: %r", request.method, route_template(request), exc
        )
        unavailable = DatabaseUnavailable(
            "The database did not answer; the request may or may not have taken effect. "
            "Retry in a moment (a write with the same Idempotency-Key).",
            headers={"retry-after": "1"},
        )
        return problem_response(unavailable, request)

    # the route template, not the path: a path can carry a secret (an invitation token)
    log.error("unhandled error on %s %s", request.method, route_template(request), exc_info=exc)
    problem = Problem(
        "An unexpected error occurred; it was logged"
        + (f" with request id {request_id}." if request_id else "."),
        status=500,
        slug="internal-error",
        title="Internal server error",
    )
    return problem_response(problem, request)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


@dataclass(frozen=True)
class PathTemplate:
    """One documented path of an app: its pattern, how many parameters it takes, its methods."""

    regex: re.Pattern[str]
    params: int
    methods: frozenset[str]


def path_templates(app: FastAPI) -> list[PathTemplate]:
    """The app's documented paths (read once from its OpenAPI document)."""
    cached: list[PathTemplate] | None = getattr(app.state, "path_templates", None)
    if cached is None:
        cached = []
        for path, operations in app.openapi().get("paths", {}).items():
            regex, _, convertors = compile_path(path)
            methods = {m.upper() for m in operations if m.upper() in _METHODS}
            cached.append(PathTemplate(regex, len(convertors), frozenset(methods)))
        app.state.path_templates = cached
    return cached


def allowed_methods(request: Request) -> list[str]:
    """Every method the request's path is served with, as the app documents it.

    Where a literal path and a templated one both match (``/members/import`` and
    ``/members/{user_id}``), the path is the literal one's: only its methods count."""
    path = request.scope.get("path", "")
    hits = [t for t in path_templates(request.app) if t.regex.match(path)]
    if not hits:
        return []
    fewest = min(t.params for t in hits)
    methods = set().union(*(t.methods for t in hits if t.params == fewest))
    return [method for method in _METHODS if method in methods]


def malformed_json(context: dict[str, Any] | None = None) -> Problem:
    """A body that is not JSON at all: 400 ``malformed-json``, at every service and the gateway."""
    reason = (context or {}).get("error")
    return Problem(
        "The body is not valid JSON" + (f": {reason}" if reason else "."),
        status=400,
        slug="malformed-json",
        title="Malformed JSON",
    )


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        if any(err.get("type") == "json_invalid" for err in exc.errors()):
            return problem_response(malformed_json(exc.errors()[0].get("ctx", {})), request)
        errors = [
            {
                "location": ".".join(str(p) for p in err.get("loc", ())),
                "message": err.get("msg", ""),
                "type": err.get("type", ""),
            }
            for err in exc.errors()
        ]
        problem = Unprocessable(
            "The request does not match the schema: "
            + "; ".join(f"{e['location']}: {e['message']}" for e in errors[:3]),
            slug="validation-error",
            title="Invalid request",
            errors=errors,
        )
        return problem_response(problem, request)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        try:
            phrase = HTTPStatus(exc.status_code).phrase
        except ValueError:
            phrase = "Error"
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; a path is often
            # served by several routes (one a method)
            headers["Allow"] = ", ".join(allowed_methods(request))
        problem = Problem(
            detail,
            status=exc.status_code,
            slug=phrase.lower().replace(" ", "-"),
            title=phrase,
            headers=headers or None,
        )
        return problem_response(problem, request)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return internal_error_response(request, exc)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


#: the problem+json body (RFC 9457) as a JSON Schema; every service names it ``Problem``
PROBLEM_COMPONENT: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; extension members name what was refused.",
    "type": "object",
    "properties": {
        "type": {"type": "string", "examples": [f"{PROBLEM_BASE}not-found"]},
        "title": {"type": "string", "examples": ["Not found"]},
        "status": {"type": "integer", "examples": [404]},
        "detail": {"type": "string", "examples": ["No such tenant."]},
        "instance": {"type": "string"},
    },
    "required": ["type", "title", "status"],
    "additionalProperties": True,
}
PROBLEM_REF = "#/components/schemas/Problem"

#: OpenAPI description of a problem response, for ``responses=`` on routes
PROBLEM_SCHEMA: dict[str, Any] = {"content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}}

#: what a refusal of each status means, in the OpenAPI document
PROBLEM_DESCRIPTIONS: dict[int, str] = {
    400: "Bad request (a malformed cursor, header or body).",
    401: "Not signed in, or the credential is invalid or expired.",
    403: "Signed in, but not allowed (role, API key scope, tenant status).",
    404: "No such object (another tenant's objects are not found either).",
    409: "Conflicts with the current state.",
    410: "Gone (expired).",
    412: "`If-Match` names a version that is no longer current.",
    413: "The body is too large.",
    415: "Unsupported media type.",
    422: "The request does not match the schema (the problem names the field).",
    429: "Too many requests; retry after `Retry-After` seconds.",
    502: "The owning service answered with something the gateway cannot pass on.",
    503: "Unavailable for a moment; retry after `Retry-After` seconds.",
    504: "The owning service did not answer in time.",
}

RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 0},
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting problem+json errors on a route."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "description": PROBLEM_DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
            **PROBLEM_SCHEMA,
        }
        if status in (429, 503):
            entry["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
        out[status] = entry
    return out


def problem_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Make an app's OpenAPI say what the problem handlers answer.

    FastAPI documents request validation as a 422 ``HTTPValidationError`` in
    ``application/json``; the handlers above answer problem+json. Every 422 (and
    every problem response) is rewritten to the one ``Problem`` schema.
    """
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_COMPONENT
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for code, response in operation["responses"].items():
                content = response.get("content") or {}
                fastapi_default = (
                    (content.get("application/json") or {}).get("schema", {}).get("$ref", "")
                ).endswith("/HTTPValidationError")
                if code == "422" and (fastapi_default or PROBLEM_JSON not in content):
                    response["content"] = PROBLEM_SCHEMA["content"]
                    response["description"] = PROBLEM_DESCRIPTIONS[422]
            if "requestBody" in operation:
                # a body that is not JSON is refused by the handlers above
                operation["responses"].setdefault("400", problem_responses(400)[400])
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas and unused not in json.dumps(document["paths"]):
            schemas.pop(unused)
    return document


def refine_openapi(app: FastAPI, step: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Pass the app's OpenAPI document through ``step`` once, when it is first built."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = step(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_problems(app: FastAPI) -> None:
    """The app's OpenAPI says what its problem handlers answer (:func:`problem_openapi`)."""
    refine_openapi(app, problem_openapi)
