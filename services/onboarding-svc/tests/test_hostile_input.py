"""No hostile input is a 5xx: every operation of the service's own OpenAPI document, each
value a database or a JSON peer cannot take (NUL, lone surrogates, NaN/Infinity/1e999,
integers past int32/int64, dates at the ends of the calendar, cursors holding them, an
oversized body), answered with a 4xx problem+json naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from onboarding_svc.main import create_app
from onboarding_svc.migrate import MIGRATIONS
from onboarding_svc.settings import Settings
from stellara_kit.migrations import upgrade_async
from stellara_kit.testing import Infrastructure, running_app
from stellara_kit.testing.hostile import HostileRequest, hostile_requests, refusal_problem
from stellara_kit.testing.infra import create_test_database, drop_test_database
from stellara_kit.testing.plugin import fresh_topics

from .conftest import Harness, MailSink

VALID_BODIES = {
    "POST /tenants/{tenant_id}/onboard/complete-step": {
        "step_key": "configure_tenant",
        "payload": {"timezone": "Europe/Paris"},
    },
}
REQUESTS = hostile_requests(create_app(Settings(environment="test")).openapi(), bodies=VALID_BODIES)


@dataclass
class Target:
    harness: Harness
    path_values: dict[str, str]

    async def send(self, hostile: HostileRequest) -> httpx.Response:
        return await self.harness.client.request(
            hostile.method,
            hostile.path(self.path_values),
            params=hostile.params,
            headers={**self.harness.headers(), **hostile.headers},
            content=hostile.content,
        )


@pytest_asyncio.fixture(scope="module")
async def target(infrastructure: Infrastructure) -> AsyncIterator[Target]:
    """The service once for the module, with a tenant being onboarded and an invitation."""
    database = await create_test_database(infrastructure)
    mail = MailSink()
    await mail.start()
    try:
        async with fresh_topics(infrastructure) as prefix:
            await upgrade_async(MIGRATIONS, database.owner_url)
            settings = Settings(
                environment="test",
                database_url=database.runtime_url,
                migration_database_url=database.owner_url,
                kafka_bootstrap_servers=infrastructure.kafka_bootstrap,
                topic_prefix=prefix,
                log_json=False,
                internal_token_secret=SecretStr("onboarding-tests-internal-secret-0123456789"),
                smtp_port=mail.port,
                accept_url_template="http://accept.test/invitations/{token}/accept",
            )
            app = create_app(settings)
            async with running_app(app) as client:
                harness = Harness(app, client, settings, database, mail)
                tenant = await harness.create_tenant()
                invitation = await harness.invite(tenant, "ada@example.com")
                values = {
                    "tenant_id": str(tenant),
                    "invitation_id": str(invitation["id"]),
                    "token": "not-a-token",
                }
                yield Target(harness, values)
    finally:
        await mail.stop()
        await drop_test_database(infrastructure, database)


@pytest.mark.parametrize("hostile", REQUESTS, ids=lambda r: r.id)
async def test_hostile_input_is_a_problem_never_a_server_error(
    target: Target, hostile: HostileRequest
) -> None:
    assert refusal_problem(await target.send(hostile)) is None


class TestTheRefusalNamesTheField:
    async def test_infinity_in_a_step_payload(self, target: Target) -> None:
        response = await target.harness.client.post(
            f"/tenants/{target.path_values['tenant_id']}/onboard/complete-step",
            content=b'{"step_key": "configure_tenant", "payload": {"seats": Infinity}}',
            headers={**target.harness.headers(), "content-type": "application/json"},
        )
        assert response.status_code == 422
        assert [e["location"] for e in response.json()["errors"]] == ["body.payload.seats"]

    async def test_nul_in_an_email(self, target: Target) -> None:
        response = await target.harness.client.post(
            f"/tenants/{target.path_values['tenant_id']}/invitations",
            json={"email": "ada\x00@example.com", "role": "tenant_admin"},
            headers=target.harness.admin_of(UUID(target.path_values["tenant_id"])),
        )
        assert response.status_code == 422
        assert [e["location"] for e in response.json()["errors"]] == ["body.email"]

    async def test_a_cursor_past_the_calendar_is_a_bad_cursor(self, target: Target) -> None:
        hostile = next(
            r
            for r in REQUESTS
            if r.id == "GET /tenants/{tenant_id}/invitations query.cursor=cursor-bar-max"
        )
        response = await target.send(hostile)
        assert response.status_code == 400
