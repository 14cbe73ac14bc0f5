"""Health, readiness, Prometheus metrics and request ids for a FastAPI app."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stellara_kit.logs import request_id_var, traced
from stellara_kit.problems import PROBLEM_JSON, internal_error_response
from stellara_kit.routing import route_template

ReadinessCheck = Callable[[], Awaitable[object]]
READINESS_TIMEOUT = 2.0


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "stellara_http_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "stellara_http_request_seconds",
            "HTTP request latency by route template",
            ["route", "method"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )


class RequestContextMiddleware(BaseHTTPMiddleware):
    """Request id and trace id for logs and responses; request metrics."""

    def __init__(self, app: object, metrics: HttpMetrics) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.metrics = metrics

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        request_id = request.headers.get("x-request-id") or secrets.token_hex(8)
        request.state.request_id = request_id
        token_r = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            with traced(request.headers.get("traceparent")):
                try:
                    response = await call_next(request)
                except Exception as exc:
                    response = internal_error_response(request, exc)
        finally:
            request_id_var.reset(token_r)
        route = route_template(request)
        if route not in ("/metrics", "/healthz", "/readyz"):
            self.metrics.requests.labels(route, request.method, str(response.status_code)).inc()
            self.metrics.latency.labels(route, request.method).observe(
                time.perf_counter() - started
            )
        response.headers["x-request-id"] = request_id
        return response


class RequestContextASGIMiddleware:
    """:class:`RequestContextMiddleware` as a plain ASGI middleware (same behaviour).

    ``BaseHTTPMiddleware`` runs the app in a separate task with memory streams
    between the two, which costs about as much as a small endpoint itself; this
    one wraps ``send`` instead. Opt in with ``install_observability(...,
    asgi_middleware=True)`` (or ``ServiceRuntime.create_app(asgi_middleware=True)``).
    """

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        request_id = request.headers.get("x-request-id") or secrets.token_hex(8)
        request.state.request_id = request_id
        token_r = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False
        request_id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [
                    *(h for h in message.get("headers", ()) if h[0].lower() != b"x-request-id"),
                    request_id_header,
                ]
            await send(message)

        try:
            with traced(request.headers.get("traceparent")):
                try:
                    await self.app(scope, receive, send_with_request_id)
                except Exception as exc:
                    if response_started:
                        raise
                    await internal_error_response(request, exc)(
                        scope, receive, send_with_request_id
                    )
        finally:
            request_id_var.reset(token_r)
            route = route_template(request)
            if route not in ("/metrics", "/healthz", "/readyz"):
                self.metrics.requests.labels(route, request.method, str(status)).inc()
                self.metrics.latency.labels(route, request.method).observe(
                    time.perf_counter() - started
                )


_CHECKS: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
#: what ``/readyz`` answers: the checks (``ok`` or why not)
_READY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["ready"]}, "checks": _CHECKS},
    "required": ["status", "checks"],
}
#: … and when one fails, a problem with the checks
_NOT_READY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "enum": [503]},
        "detail": {"type": "string"},
        "checks": _CHECKS,
    },
    "required": ["type", "title", "status", "checks"],
}


def install_observability(
    app: FastAPI,
    *,
    registry: CollectorRegistry,
    checks: Mapping[str, ReadinessCheck] | Callable[[], Mapping[str, ReadinessCheck]],
    asgi_middleware: bool = False,
) -> None:
    """``/healthz`` (alive), ``/readyz`` (every check passes) and ``/metrics``.

    ``checks`` may be a callable, read on each request (checks added after start count).
    ``asgi_middleware`` uses :class:`RequestContextASGIMiddleware` (faster, same behaviour).
    """
    middleware = RequestContextASGIMiddleware if asgi_middleware else RequestContextMiddleware
    app.add_middleware(middleware, metrics=HttpMetrics(registry))

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        """The process is up and serving."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness",
        response_model=None,
        responses={
            200: {
                "description": "Every dependency answers.",
                "content": {"application/json": {"schema": _READY_SCHEMA}},
            },
            503: {
                "description": "A dependency is not answering (the problem names it).",
                "content": {PROBLEM_JSON: {"schema": _NOT_READY_SCHEMA}},
            },
        },
    )
    async def readyz() -> JSONResponse:
        """Ready when every dependency (database, broker…) answers."""
        results: dict[str, str] = {}

        async def run(name: str, check: ReadinessCheck) -> None:
            try:
                await asyncio.wait_for(check(), READINESS_TIMEOUT)
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"failing: {type(exc).__name__}: {exc}"[:300]

        current = checks() if callable(checks) else checks
        await asyncio.gather(*(run(n, c) for n, c in current.items()))
        ready = all(v == "ok" for v in results.values())
        body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": results}
        if ready:
            return JSONResponse(body)
        body |= {
            "type": "urn:stellara:problem:not-ready",
            "title": "Not ready",
            "status": 503,
            "detail": "A dependency is not answering: "
            + ", ".join(k for k, v in results.items() if v != "ok"),
        }
        return JSONResponse(body, status_code=503, media_type=PROBLEM_JSON)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_model=None,
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "Prometheus text exposition.",
                "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> Response:
        """Prometheus text exposition."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
