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

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from stellara_kit.db import connection_lost

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


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    instance = request.url.path if request is not None else None
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
    from stellara_kit.observability import route_template  # imports this module

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


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
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
        problem = Problem(
            detail,
            status=exc.status_code,
            slug=phrase.lower().replace(" ", "-"),
            title=phrase,
            headers=dict(exc.headers) if exc.headers else None,
        )
        return problem_response(problem, request)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return internal_error_response(request, exc)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


#: OpenAPI description of a problem response, for ``responses=`` on routes
PROBLEM_SCHEMA: dict[str, Any] = {
    "content": {
        PROBLEM_JSON: {
            "schema": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                },
                "required": ["type", "title", "status"],
            }
        }
    }
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting problem+json errors on a route."""
    return {
        status: {"description": HTTPStatus(status).phrase, **PROBLEM_SCHEMA} for status in statuses
    }
