"""Calling the owning services: answers passed back, failures as 503/504, reads retried."""

from __future__ import annotations

import httpx
import pytest

from gateway.downstream import Downstreams
from gateway.routes import Service
from gateway.settings import Settings
from stellara_kit.problems import Problem
from stellara_kit.testing import Infrastructure

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
        downstreams.clients[Service.TENANT] = httpx.AsyncClient(
            base_url="http://tenant-svc", transport=transport
        )

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
