"""Calling the owning services: answers passed back, failures as 503/504, reads retried."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.downstream import Downstreams, KeepAlivePool
from gateway.routes import Service
from gateway.settings import Settings
from stellara_kit.problems import Problem
from stellara_kit.testing import Infrastructure, wait_for

from .conftest import StandIns, Tenants, free_port, gateway_client, gateway_settings, user_headers


class TestAnswersPassBack:
    async def test_the_services_status_body_and_headers_come_back(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        downstream.tenant.answer = (
            409,
            b'{"type":"urn:stellara:problem:conflict","title":"Conflict","status":409}',
            "application/problem+json",
        )
        headers = user_headers(settings, "platform_admin")
        response = await client.post("/tenants", headers=headers, json={"slug": "acme"})
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["title"] == "Conflict"

    async def test_a_write_body_is_forwarded_as_sent(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        headers = user_headers(settings, "tenant_admin", tenants.acme.tenant_id)
        body = b'{"category": "billing", "key": "hard_limit_action", "value": "suspend"}'
        response = await client.post(
            f"/tenants/{tenants.acme.slug}/config",
            headers=headers | {"content-type": "application/json"},
            content=body,
        )
        assert response.status_code == 201
        assert response.headers["x-served-by"] == "tenant-svc"
        [call] = downstream.tenant.calls("/tenants")
        assert call.body == body
        assert call.headers["content-type"] == "application/json"

    async def test_an_error_page_from_a_service_becomes_a_502_problem(
        self, client: httpx.AsyncClient, settings: Settings, tenants: Tenants, downstream: StandIns
    ) -> None:
        downstream.usage.answer = (500, b"Traceback (most recent call last): ...", "text/plain")
        headers = user_headers(settings, "user", tenants.acme.tenant_id)
        response = await client.get(f"/tenants/{tenants.acme.tenant_id}/usage", headers=headers)
        assert response.status_code == 502
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "Traceback" not in response.text

    async def test_a_body_over_the_limit_is_413_before_any_service_is_called(
        self,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
        downstream: StandIns,
    ) -> None:
        small = gateway_settings(infrastructure, topic_prefix, downstream, max_body_bytes=1024)
        async with gateway_client(small) as client:
            headers = user_headers(small, "tenant_admin", tenants.acme.tenant_id)
            response = await client.put(
                f"/tenants/{tenants.acme.tenant_id}/config/general.display_name",
                headers=headers,
                json={"value": "x" * 2000},
            )
        assert response.status_code == 413
        assert downstream.received() == []


class TestFailures:
    async def test_a_service_that_is_down_gives_503(
        self,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
        downstream: StandIns,
    ) -> None:
        down = gateway_settings(
            infrastructure,
            topic_prefix,
            downstream,
            usage_svc_url=f"http://127.0.0.1:{free_port()}",
        )
        async with gateway_client(down) as client:
            headers = user_headers(down, "user", tenants.acme.tenant_id)
            response = await client.get(f"/tenants/{tenants.acme.tenant_id}/usage", headers=headers)
        assert response.status_code == 503
        body = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        assert body["service"] == "usage-svc"
        assert response.headers["retry-after"] == "1"

    async def test_a_service_that_is_too_slow_gives_504(
        self,
        infrastructure: Infrastructure,
        topic_prefix: str,
        settings: Settings,
        tenants: Tenants,
        downstream: StandIns,
    ) -> None:
        impatient = gateway_settings(
            infrastructure, topic_prefix, downstream, downstream_timeout_seconds=0.3
        )
        downstream.onboarding.delay = 1.5
        async with gateway_client(impatient) as client:
            headers = user_headers(impatient, "user", tenants.acme.tenant_id)
            response = await client.get(
                f"/tenants/{tenants.acme.tenant_id}/onboarding-status", headers=headers
            )
        assert response.status_code == 504
        assert response.json()["service"] == "onboarding-svc"
        assert response.headers["content-type"].startswith("application/problem+json")


def _flaky(failures: int) -> tuple[list[str], httpx.MockTransport]:
    """A transport whose first ``failures`` connections are refused."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if len(seen) <= failures:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"ok": True})

    return seen, httpx.MockTransport(handle)


class TestRetries:
    @pytest.fixture
    def downstreams(self) -> Downstreams:
        return Downstreams(Settings(downstream_read_retries=2))

    async def _use(self, downstreams: Downstreams, transport: httpx.MockTransport) -> None:
        downstreams.transports[Service.TENANT] = transport

    async def test_a_read_whose_connection_failed_is_retried(
        self, downstreams: Downstreams
    ) -> None:
        seen, transport = _flaky(failures=2)
        await self._use(downstreams, transport)
        response = await downstreams.forward(
            Service.TENANT, "GET", "/tenants/x", query="", headers={}, body=b""
        )
        assert response.status_code == 200
        assert seen == ["GET", "GET", "GET"]

    async def test_a_read_gives_up_after_the_configured_retries(
        self, downstreams: Downstreams
    ) -> None:
        seen, transport = _flaky(failures=5)
        await self._use(downstreams, transport)
        with pytest.raises(Problem) as raised:
            await downstreams.forward(
                Service.TENANT, "GET", "/tenants/x", query="", headers={}, body=b""
            )
        assert raised.value.status == 503
        assert len(seen) == 3

    @pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
    async def test_writes_are_never_retried(self, downstreams: Downstreams, method: str) -> None:
        seen, transport = _flaky(failures=1)
        await self._use(downstreams, transport)
        with pytest.raises(Problem) as raised:
            await downstreams.forward(
                Service.TENANT, method, "/tenants/x", query="", headers={}, body=b"{}"
            )
        assert raised.value.status == 503
        assert seen == [method]


class RawService:
    """A loopback server answering each request with the next canned bytes."""

    def __init__(self, answers: list[bytes], *, close_after: bool = False) -> None:
        self.answers = answers
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append(head + await reader.readexactly(length))
                writer.write(self.answers.pop(0))
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def raw_service(service: RawService) -> AsyncIterator[str]:
    server = await asyncio.start_server(service.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


def _pool() -> KeepAlivePool:
    return KeepAlivePool(max_connections=4, keepalive_expiry=4.0)


OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{"ok": true}'


class TestKeepAlivePool:
    async def test_connections_are_reused_and_bodies_sent(self) -> None:
        service = RawService([OK, OK, OK])
        async with raw_service(service) as url, httpx.AsyncClient(transport=_pool()) as client:
            for _ in range(3):
                response = await client.post(f"{url}/things?x=1", json={"a": 1})
                assert response.status_code == 200
                assert response.json() == {"ok": True}
        assert service.connections == 1
        assert service.requests[0].startswith(b"POST /things?x=1 HTTP/1.1\r\n")
        assert service.requests[0].endswith(b'{"a":1}')

    async def test_chunked_answers_are_read_whole(self) -> None:
        chunked = (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
        )
        service = RawService([chunked, OK])
        async with raw_service(service) as url, httpx.AsyncClient(transport=_pool()) as client:
            assert (await client.get(f"{url}/a")).content == b"hello world"
            assert (await client.get(f"{url}/b")).json() == {"ok": True}
        assert service.connections == 1

    async def test_no_body_for_204_and_a_closed_connection_is_not_reused(self) -> None:
        closing = b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
        service = RawService([closing, OK])
        async with raw_service(service) as url, httpx.AsyncClient(transport=_pool()) as client:
            assert (await client.delete(f"{url}/a")).status_code == 204
            assert (await client.get(f"{url}/b")).status_code == 200
        assert service.connections == 2

    async def test_a_connection_the_service_closed_while_idle_is_replaced(self) -> None:
        service = RawService([OK, OK], close_after=True)
        async with raw_service(service) as url, httpx.AsyncClient(transport=_pool()) as client:
            assert (await client.get(f"{url}/a")).status_code == 200
            await wait_for(lambda: _closed(service), timeout=5)
            assert (await client.post(f"{url}/b", json={})).status_code == 200
        assert service.connections == 2

    async def test_a_refused_connection_is_a_connect_error(self) -> None:
        async with httpx.AsyncClient(transport=_pool()) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{free_port()}/a")


async def _closed(service: RawService) -> bool:
    return service.connections == 1 and len(service.requests) == 1
