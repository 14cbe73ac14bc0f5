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
import time
from collections.abc import Mapping
from dataclasses import dataclass

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


class KeepAlivePool(httpx.AsyncBaseTransport):
    """A lean HTTP/1.1 keep-alive transport for one service.

    The services are uvicorn apps on a trusted network: plain HTTP/1.1 with
    ``content-length`` or chunked bodies. Speaking that directly over asyncio
    streams costs a fraction of httpcore's general-purpose machinery (anyio
    streams, h11 state machine, a pool that re-examines every connection for
    every waiting request — work that grows with connections × waiting requests).
    Idle connections wait on a stack (the most recently used first, so the pool
    shrinks back when load drops) and callers wait on a semaphore as wide as the
    pool. Errors are httpx's (ConnectError, ReadTimeout, …), timeouts come from
    the request's ``timeout`` extension as with any httpx transport.
    """

    def __init__(self, *, max_connections: int, keepalive_expiry: float) -> None:
        self._gate = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._keepalive_expiry = keepalive_expiry

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        if self._gate.locked():
            try:
                await asyncio.wait_for(self._gate.acquire(), timeouts.get("pool"))
            except TimeoutError:
                raise httpx.PoolTimeout("no connection free in time", request=request) from None
        else:
            await self._gate.acquire()
        try:
            head, body = _encode(request)
            connection = self._reusable()
            if connection is not None:
                try:
                    return await self._exchange(connection, request, head, body, timeouts)
                except _StaleConnection:
                    # the service closed this idle connection before reading the request
                    pass
            connection = await _Connection.open(request, timeouts.get("connect"))
            try:
                return await self._exchange(connection, request, head, body, timeouts)
            except _StaleConnection as exc:
                raise httpx.RemoteProtocolError(
                    "the service closed the connection without answering", request=request
                ) from exc
        finally:
            self._gate.release()

    async def _exchange(
        self,
        connection: _Connection,
        request: httpx.Request,
        head: bytes,
        body: bytes,
        timeouts: Mapping[str, float | None],
    ) -> httpx.Response:
        try:
            try:
                async with asyncio.timeout(timeouts.get("write")):
                    connection.writer.write(head + body if len(body) < 65536 else head)
                    if len(body) >= 65536:
                        connection.writer.write(body)
                    await connection.writer.drain()
            except TimeoutError:
                raise httpx.WriteTimeout("writing the request timed out", request=request) from None
            try:
                async with asyncio.timeout(timeouts.get("read")):
                    status, headers, content, keep_alive = await _read_response(
                        connection.reader, request.method
                    )
            except TimeoutError:
                raise httpx.ReadTimeout(
                    "the service did not answer in time", request=request
                ) from None
        except _StaleConnection:
            connection.close()
            raise
        except httpx.HTTPError:
            connection.close()
            raise
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            connection.close()
            raise httpx.RemoteProtocolError(f"broken answer: {exc!r}", request=request) from exc
        if keep_alive:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        return httpx.Response(status, headers=headers, content=content, request=request)

    def _reusable(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if now - connection.idle_since < self._keepalive_expiry and connection.usable():
                return connection
            connection.close()
        return None

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class _StaleConnection(Exception):
    """A reused connection was closed by the peer before any byte of an answer."""


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    @classmethod
    async def open(cls, request: httpx.Request, timeout: float | None) -> _Connection:
        url = request.url
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(url.host, url.port or 80)
        except TimeoutError:
            raise httpx.ConnectTimeout("connecting timed out", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or "connection refused", request=request) from exc
        return cls(reader, writer)

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


def _encode(request: httpx.Request) -> tuple[bytes, bytes]:
    body = request.content
    target = request.url.raw_path
    lines = [request.method.encode("ascii") + b" " + target + b" HTTP/1.1"]
    for name, value in request.headers.raw:
        if name.lower() not in (b"content-length", b"transfer-encoding", b"connection"):
            lines.append(name + b": " + value)
    if body or request.method in ("POST", "PUT", "PATCH"):
        lines.append(b"content-length: " + str(len(body)).encode("ascii"))
    return b"\r\n".join(lines) + b"\r\n\r\n", body


async def _read_response(
    reader: asyncio.StreamReader, method: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
    """Status, headers, body and whether the connection may be reused."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise _StaleConnection() from exc
        raise
    status_line, *header_lines = head[:-4].split(b"\r\n")
    version, status_text = status_line.split(b" ", 1)
    status = int(status_text[:3])
    headers: list[tuple[bytes, bytes]] = []
    length: int | None = None
    chunked = False
    keep_alive = version == b"HTTP/1.1"
    for line in header_lines:
        name, _, value = line.partition(b":")
        name, value = name.strip(), value.strip()
        lower = name.lower()
        if lower == b"content-length":
            length = int(value)
        elif lower == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif lower == b"connection":
            keep_alive = b"close" not in value.lower() and (
                keep_alive or b"keep-alive" in value.lower()
            )
        headers.append((name, value))
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, headers, b"", keep_alive
    if chunked:
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return status, headers, b"".join(parts), keep_alive
    if length is not None:
        return status, headers, await reader.readexactly(length), keep_alive
    return status, headers, await reader.read(), False


class Downstreams:
    """One ``httpx.AsyncClient`` per downstream service, over a :class:`KeepAlivePool`.

    Forwarded requests go straight to the client's transport: a proxy shared by
    every caller must neither keep cookies between requests (the client's cookie
    jar) nor follow redirects; the client's timeouts travel with each request.
    """

    def __init__(self, settings: Settings) -> None:
        self.retries = settings.downstream_read_retries
        self.timeout = httpx.Timeout(
            settings.downstream_timeout_seconds,
            connect=settings.downstream_connect_timeout_seconds,
            pool=settings.downstream_timeout_seconds,
        )
        self.urls = {
            Service.TENANT: httpx.URL(settings.tenant_svc_url),
            Service.USAGE: httpx.URL(settings.usage_svc_url),
            Service.ONBOARDING: httpx.URL(settings.onboarding_svc_url),
        }
        self.transports: dict[Service, httpx.AsyncBaseTransport] = {
            service: KeepAlivePool(
                max_connections=settings.downstream_max_connections,
                keepalive_expiry=settings.downstream_keepalive_seconds,
            )
            for service in self.urls
        }
        self.clients = {
            service: httpx.AsyncClient(
                base_url=url,
                timeout=self.timeout,
                transport=self.transports[service],
                trust_env=False,
            )
            for service, url in self.urls.items()
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
        route: str | None = None,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        """Send the request to ``service`` and return its answer as the gateway's response.

        Logs name the route template (``route``), never the raw path: a path can carry a
        secret, such as an invitation token.
        """
        logged = route or "(route)"
        base = self.urls[service]
        target = path + ("?" + query if query else "")
        request = httpx.Request(
            method,
            f"{base.scheme}://{base.netloc.decode('ascii')}{target}",
            headers=headers,
            content=body or None,
            extensions={"timeout": self.timeout.as_dict()},
        )
        if request.url.raw_path.partition(b"?")[0] != path.encode("latin-1"):
            # the URL library rewrote the path (dot segments): never serve another route
            raise Problem(
                "The request path cannot be forwarded as it is.",
                slug="bad-path",
                title="Bad request path",
            )
        transport = self.transports[service]
        attempts = 1 + (self.retries if method in ("GET", "HEAD") else 0)
        for attempt in range(1, attempts + 1):
            try:
                answer = await transport.handle_async_request(request)
                break
            except _NOT_REACHED as exc:
                if attempt < attempts:
                    await asyncio.sleep(_RETRY_BACKOFF_SECONDS * attempt)
                    continue
                log.warning("%s unreachable for %s %s: %r", service, method, logged, exc)
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
                log.warning("%s timed out for %s %s", service, method, logged)
                raise DownstreamTimeout(
                    f"{service} did not answer in time.", service=str(service)
                ) from exc
            except httpx.HTTPError as exc:
                log.warning("%s failed for %s %s: %r", service, method, logged, exc)
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
