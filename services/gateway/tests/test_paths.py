"""Path confusion: the gateway serves exactly the route it authorized.

``PUT /tenants/T/members/..`` matches the members route (tenant_admin may call
it) but, normalised, is ``PUT /tenants/T`` (platform_admin only). Every
ambiguous form is refused with 400 before routing, whichever route it aims
at, and what is forwarded is built from the authorized route's template.
Requests are sent as raw ASGI calls: HTTP clients normalise dot segments
before sending, an attacker's client does not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote

import pytest
import pytest_asyncio
from fastapi import FastAPI

from gateway.main import create_app
from gateway.settings import Settings
from stellara_kit.testing import raw_request, running_app

from .conftest import StandIns, Tenants, user_headers, wait_until_ready

FORMS = [
    "..",
    ".",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%2E",
    "x%2f..",
    "x%2F..",
    "x%5c..",
    "%252e%252e",
    "%252E",
    "x\\..",
]


@dataclass
class Running:
    app: FastAPI
    settings: Settings
    tenants: Tenants
    downstream: StandIns


@pytest_asyncio.fixture
async def running(
    settings: Settings, tenants: Tenants, downstream: StandIns
) -> AsyncIterator[Running]:
    app = create_app(settings)
    async with running_app(app) as http:
        await wait_until_ready(http)
        yield Running(app, settings, tenants, downstream)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("PUT", "/tenants/{id}/members/{form}"),
        ("DELETE", "/tenants/{id}/api-keys/{form}"),
        ("DELETE", "/tenants/{id}/config/{form}"),
        ("POST", "/invitations/{form}/accept"),
        ("GET", "/tenants/{id}/usage/{form}"),
    ],
)
async def test_dot_segments_in_any_form_are_refused_before_routing(
    running: Running, method: str, template: str, form: str
) -> None:
    acme = running.tenants.acme
    path = template.format(id=acme.tenant_id, form=form)
    headers = user_headers(running.settings, "tenant_admin", acme.tenant_id, email="a@x.example")
    headers["content-type"] = "application/json"

    answer = await raw_request(
        running.app, method, path.encode("latin-1"), headers=headers, body=b'{"name": "Pwned"}'
    )

    assert answer.status == 400, answer.body
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == "urn:stellara:problem:bad-path"
    assert running.downstream.received() == []


@pytest.mark.parametrize("path", ["/tenants//{id}", "/tenants/{id}/", "/tenants/{id}//members"])
async def test_empty_segments_are_refused(running: Running, path: str) -> None:
    acme = running.tenants.acme
    headers = user_headers(running.settings, "platform_admin")

    answer = await raw_request(
        running.app, "GET", path.format(id=acme.tenant_id).encode(), headers=headers
    )

    assert answer.status == 400
    assert running.downstream.received() == []


async def test_the_forwarded_path_is_the_authorized_route_with_its_parameters(
    running: Running,
) -> None:
    acme = running.tenants.acme
    headers = user_headers(running.settings, "tenant_admin", acme.tenant_id)

    answer = await raw_request(
        running.app,
        "PUT",
        f"/tenants/{acme.slug}/members/user%20%C3%BC%3F".encode(),
        headers=headers | {"content-type": "application/json"},
        body=b'{"role": "user"}',
    )

    assert answer.status == 200, answer.body
    (call,) = running.downstream.received()
    # the slug became the id, the member id arrived as the one segment it was
    assert unquote(call.path) == f"/tenants/{acme.tenant_id}/members/user ü?"
    assert call.method == "PUT"
    assert call.query == ""
