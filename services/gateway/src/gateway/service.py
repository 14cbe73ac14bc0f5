"""What the gateway does with each request.

authenticate → resolve the tenant → guard (tenant, status, role) → rate
limit (per tenant; per caller and address for invitation accepts) → forward to the owning service (or ingest usage) → meter. Every
refusal is a problem+json response; metering records the outcome of every
request served for a known tenant, off the request path.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Mapping
from urllib.parse import quote
from uuid import UUID

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from gateway.auth import Authenticator, InternalTokens
from gateway.downstream import FORWARDED_REQUEST_HEADERS, Downstreams
from gateway.events import UsagePublisher
from gateway.ingestion import parse_usage_batch
from gateway.metering import Metering
from gateway.ratelimit import AcceptAttempts, RateLimiter
from gateway.routes import Access, Route, Service, TenantContext
from gateway.schemas import EventError, IngestionResult
from gateway.settings import Settings
from gateway.tenancy import ResolvedTenant, TenantResolver, check_access
from stellara_contracts.events import TenantStatus
from stellara_kit.auth import Principal
from stellara_kit.logs import tenant_id_var
from stellara_kit.problems import NotFound, Problem, Unprocessable, problem_response
from stellara_kit.tenant_directory import TenantDirectory

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$")
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORWARDED = frozenset(name.encode() for name in FORWARDED_REQUEST_HEADERS)


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Payload too large"


def child_traceparent(incoming: str | None) -> str:
    """The trace context sent downstream: the caller's trace with a new span, or a new trace."""
    span = secrets.token_hex(8)
    match = _TRACEPARENT.match(incoming or "")
    if match and match.group(1) != "0" * 32:
        return f"00-{match.group(1)}-{span}-{match.group(2)}"
    return f"00-{secrets.token_hex(16)}-{span}-01"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The body may be at most {limit} bytes.", max_bytes=limit)
    if (
        request.method in _BODYLESS
        and declared is None
        and "transfer-encoding" not in request.headers
    ):
        return b""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body may be at most {limit} bytes.", max_bytes=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def downstream_path(route: Route, params: Mapping[str, str], tenant: ResolvedTenant | None) -> str:
    """The path the owning service gets: the authorized route's template filled with its
    (percent-encoded) parameters, never the raw path, so what was authorized is what is served.
    The path may name the tenant by slug: services get its id."""
    values = dict(params)
    if tenant is not None and route.context is TenantContext.PATH:
        values["id"] = str(tenant.id)
    for value in values.values():
        if value in ("", ".", ".."):  # the path guard refuses these first; never forward one
            raise Problem(
                "The request path has an empty or dot segment.",
                slug="bad-path",
                title="Bad request path",
            )
    return route.path.format_map({name: quote(value, safe="") for name, value in values.items()})


class Gateway:
    def __init__(
        self,
        settings: Settings,
        *,
        directory: TenantDirectory,
        authenticator: Authenticator,
        downstreams: Downstreams,
        tokens: InternalTokens,
        publisher: UsagePublisher,
        metering: Metering | None,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.authenticator = authenticator
        self.resolver = TenantResolver(settings, directory)
        self.downstreams = downstreams
        self.tokens = tokens
        self.limiter = RateLimiter(settings)
        self.accept_attempts = AcceptAttempts(settings)
        self.publisher = publisher
        self.metering = metering

    async def handle(self, route: Route, request: Request) -> Response:
        metered: UUID | None = None
        try:
            if not self.directory.ready.is_set():
                await self._wait_for_directory()
            principal = await self.authenticator.authenticate(request)
            caller = self.resolver.caller_tenant(principal)
            tenant = self.resolver.resolve(route, request, principal, caller)
            plan: str | None = None
            # metered only when the tenant is the caller's own: a tenant never pays for
            # requests refused on its behalf to someone else
            if (
                tenant is not None
                and tenant.snapshot is not None
                and (principal.is_platform_admin or tenant.id == caller)
            ):
                metered, plan = tenant.id, tenant.snapshot.plan
                tenant_id_var.set(str(tenant.id))
            check_access(route, principal, tenant, caller)
            if metered is not None and not principal.is_platform_admin:
                self.limiter.take(metered, plan)
            if route.access is Access.INVITEE:
                # the path carries a secret token: guessing it costs a token per attempt
                client = request.client
                self.accept_attempts.take(principal.subject, client.host if client else None)
            if route.service is Service.GATEWAY:
                response = await self._ingest(request, principal, tenant)
            else:
                response = await self._forward(route, request, principal, tenant, caller)
        except Problem as problem:
            response = problem_response(problem, request)
        if metered is not None and self.metering is not None:
            self.metering.record(
                metered, route.path, route.method, response.status_code, time.time()
            )
        return response

    async def _wait_for_directory(self) -> None:
        try:
            await asyncio.wait_for(
                self.directory.ready.wait(), self.settings.directory_wait_seconds
            )
        except TimeoutError:
            raise Problem(
                "The gateway is starting (reading the tenant directory); retry in a moment.",
                status=503,
                slug="starting",
                title="Service unavailable",
                headers={"Retry-After": "1"},
            ) from None

    # ------------------------------------------------------------------ forwarding
    def _identity(self, principal: Principal, caller: UUID | None) -> Principal:
        """The identity sent downstream: the caller, bound to its (possibly default) tenant."""
        if principal.is_platform_admin or principal.tenant_id == caller:
            return principal
        return principal.model_copy(update={"tenant_id": caller})

    async def _forward(
        self,
        route: Route,
        request: Request,
        principal: Principal,
        tenant: ResolvedTenant | None,
        caller: UUID | None,
    ) -> Response:
        scope = request.scope
        path = downstream_path(route, request.path_params, tenant)
        # one pass over the raw headers: only the listed ones travel on
        headers: dict[str, str] = {}
        traceparent = forwarded_for = None
        for raw_name, raw_value in scope["headers"]:
            if raw_name in _FORWARDED:
                headers[raw_name.decode("latin-1")] = raw_value.decode("latin-1")
            elif raw_name == b"traceparent":
                traceparent = raw_value.decode("latin-1")
            elif raw_name == b"x-forwarded-for":
                forwarded_for = raw_value.decode("latin-1")
        headers["authorization"] = "Bearer " + self.tokens.token_for(
            self._identity(principal, caller)
        )
        headers["x-request-id"] = getattr(request.state, "request_id", None) or secrets.token_hex(8)
        headers["traceparent"] = child_traceparent(traceparent)
        if tenant is not None:
            headers["x-tenant-id"] = str(tenant.id)
        client = request.client
        if client is not None:
            headers["x-forwarded-for"] = (
                f"{forwarded_for}, {client.host}" if forwarded_for else client.host
            )
        body = await read_body(request, self.settings.max_body_bytes)
        return await self.downstreams.forward(
            route.service,
            route.method,
            path,
            route=route.path,
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body,
        )

    # ------------------------------------------------------------------ ingestion
    async def _ingest(
        self, request: Request, principal: Principal, tenant: ResolvedTenant | None
    ) -> Response:
        snapshot = tenant.snapshot if tenant is not None else None
        if tenant is None or snapshot is None or snapshot.status == TenantStatus.DELETED:
            raise NotFound(
                f"No tenant to record usage for: name it with the {self.settings.tenant_header_name} header.",
                slug="tenant-not-found",
            )
        body = await read_body(request, self.settings.max_body_bytes)
        traceparent = child_traceparent(request.headers.get("traceparent"))
        batch = parse_usage_batch(
            body,
            request.headers.get("content-type"),
            tenant.id,
            max_events=self.settings.max_batch_events,
            source=self.settings.service_name,
            traceparent=traceparent,
            idempotency_key=request.headers.get("idempotency-key"),
        )
        if not batch.events:
            first = "; ".join(
                f"events[{e.index}].{message}" for e in batch.errors[:3] for message in e.errors[:1]
            )
            raise Unprocessable(
                f"No event of the batch is valid; nothing was recorded: {first}",
                slug="invalid-events",
                title="Invalid events",
                errors=[e.model_dump() for e in batch.errors],
            )
        results = await self.publisher.publish([(e.key, e.to_json()) for _, e in batch.events])
        errors = list(batch.errors)
        accepted: list[UUID] = []
        unconfirmed: list[UUID] = []
        for (index, event), error in zip(batch.events, results, strict=True):
            if error is None:
                accepted.append(event.id)
                continue
            # an unacknowledged record may still be delivered by the producer later
            unconfirmed.append(event.id)
            errors.append(
                EventError(
                    index=index,
                    errors=[
                        "not confirmed: Kafka did not acknowledge it in time, so it may have been "
                        f"recorded; resend it with the same id ({event.id})"
                    ],
                )
            )
        if not accepted:
            raise Problem(
                "Kafka did not acknowledge the events in time: they may have been recorded. "
                "Resend them with the same ids (listed in `ids`; the same request with the same "
                "Idempotency-Key gives them again), which never counts twice.",
                status=503,
                slug="service-unavailable",
                title="Service unavailable",
                headers={"Retry-After": "1"},
                ids=[str(event_id) for event_id in unconfirmed],
            )
        errors.sort(key=lambda e: e.index)
        result = IngestionResult(
            accepted=len(accepted), rejected=len(errors), ids=accepted, errors=errors
        )
        return JSONResponse(result.model_dump(mode="json"), status_code=202)
