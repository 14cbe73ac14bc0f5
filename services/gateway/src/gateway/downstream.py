"""Calling the owning services: one pooled HTTP client per service.

Requests go to the same path on the owning service with the caller's
identity as an internal token, the request id and the trace context. Only
idempotent reads are retried, and only when the connection failed (the
request never reached the service). A service that cannot be reached is
503, one that does not answer in time is 504 — both problem+json.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import httpx
from fastapi import Response

from gateway.routes import Service
from gateway.settings import Settings
from stellara_kit.problems import PROBLEM_JSON, Problem

log = logging.getLogger(__name__)

#: request headers passed on to the service besides the ones the gateway sets
FORWARDED_REQUEST_HEADERS = (
    "content-type",
    "accept",
    "accept-language",
    "idempotency-key",
    "if-match",
    "if-none-match",
    "user-agent",
)
#: response headers not passed back (hop-by-hop, or set by the gateway's own server)
DROPPED_RESPONSE_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "date",
        "server",
        "x-request-id",
        "proxy-authenticate",
        "trailer",
        "upgrade",
    }
)
#: connection failures: the request did not reach the service, so a read may be retried
_NOT_REACHED = (httpx.ConnectError, httpx.ConnectTimeout)
_RETRY_BACKOFF_SECONDS = 0.05


class DownstreamUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class DownstreamTimeout(Problem):
    status, slug, title = 504, "gateway-timeout", "Gateway timeout"


class Downstreams:
    """One ``httpx.AsyncClient`` (a connection pool) per downstream service."""

    def __init__(self, settings: Settings) -> None:
        self.retries = settings.downstream_read_retries
        timeout = httpx.Timeout(
            settings.downstream_timeout_seconds,
            connect=settings.downstream_connect_timeout_seconds,
            pool=settings.downstream_timeout_seconds,
        )
        limits = httpx.Limits(
            max_connections=settings.downstream_max_connections,
            max_keepalive_connections=settings.downstream_max_connections,
            keepalive_expiry=30,
        )
        urls = {
            Service.TENANT: settings.tenant_svc_url,
            Service.USAGE: settings.usage_svc_url,
            Service.ONBOARDING: settings.onboarding_svc_url,
        }
        self.clients = {
            service: httpx.AsyncClient(
                base_url=url, timeout=timeout, limits=limits, trust_env=False
            )
            for service, url in urls.items()
        }

    def client(self, service: Service) -> httpx.AsyncClient:
        return self.clients[service]

    async def close(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients.values()))

    async def forward(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        """Send the request to ``service`` and return its answer as the gateway's response."""
        client = self.clients[service]
        request = client.build_request(
            method,
            path,
            params=httpx.QueryParams(query) if query else None,
            headers=headers,
            content=body or None,
        )
        attempts = 1 + (self.retries if method in ("GET", "HEAD") else 0)
        for attempt in range(1, attempts + 1):
            try:
                answer = await client.send(request)
                break
            except _NOT_REACHED as exc:
                if attempt < attempts:
                    await asyncio.sleep(_RETRY_BACKOFF_SECONDS * attempt)
                    continue
                log.warning("%s unreachable for %s %s: %r", service, method, path, exc)
                raise DownstreamUnavailable(
                    f"{service} is not reachable; retry in a moment.",
                    headers={"Retry-After": "1"},
                    service=str(service),
                ) from exc
            except httpx.PoolTimeout as exc:
                raise DownstreamUnavailable(
                    f"Too many requests to {service} are in flight; retry in a moment.",
                    headers={"Retry-After": "1"},
                    service=str(service),
                ) from exc
            except httpx.TimeoutException as exc:
                log.warning("%s timed out for %s %s", service, method, path)
                raise DownstreamTimeout(
                    f"{service} did not answer in time.", service=str(service)
                ) from exc
            except httpx.HTTPError as exc:
                log.warning("%s failed for %s %s: %r", service, method, path, exc)
                raise DownstreamUnavailable(
                    f"{service} closed the connection; retry in a moment.",
                    headers={"Retry-After": "1"},
                    service=str(service),
                ) from exc
        return _relay(service, answer)


def _relay(service: Service, answer: httpx.Response) -> Response:
    content_type = answer.headers.get("content-type", "")
    if answer.status_code >= 500 and not content_type.startswith(PROBLEM_JSON):
        # never pass on an error page that may carry internals
        raise Problem(
            f"{service} failed to answer this request.",
            status=502,
            slug="bad-gateway",
            title="Bad gateway",
            service=str(service),
        )
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in DROPPED_RESPONSE_HEADERS}
    return Response(content=answer.content, status_code=answer.status_code, headers=headers)
