"""No hostile input is a 5xx: every operation of the service's own OpenAPI document, each
value a database or a JSON peer cannot take (NUL, lone surrogates, NaN/Infinity/1e999,
integers past int32/int64, dates at the ends of the calendar, cursors holding them, an
oversized body), answered with a 4xx problem+json naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio

from stellara_contracts.events import Role
from stellara_kit.migrations import upgrade_async
from stellara_kit.testing import Infrastructure, auth_headers, running_app
from stellara_kit.testing.hostile import HostileRequest, hostile_requests, refusal_problem
from stellara_kit.testing.infra import create_test_database, drop_test_database
from stellara_kit.testing.plugin import fresh_topics
from tenant_svc.main import create_app
from tenant_svc.migrate import MIGRATIONS
from tenant_svc.settings import Settings

#: bodies the rules accept, for the hostile values to reach past them
VALID_BODIES = {
    "POST /tenants": {"name": "Hostile", "slug": "hostile-new", "plan": "free", "metadata": {}},
    "PUT /tenants/{id}": {"name": "Hostile", "plan": "free", "metadata": {"team": "a"}},
    "POST /tenants/{id}/members": {
        "user_id": "u2",
        "email": "u2@example.com",
        "name": "U Two",
        "role": "user",
    },
    "POST /tenants/{id}/api-keys": {
        "name": "probe",
        "scopes": ["tenant:read"],
        "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
    },
}
REQUESTS = hostile_requests(create_app(Settings(environment="test")).openapi(), bodies=VALID_BODIES)


@dataclass
class Target:
    client: httpx.AsyncClient
    headers: dict[str, str]
    path_values: dict[str, str]

    async def send(self, hostile: HostileRequest) -> httpx.Response:
        return await self.client.request(
            hostile.method,
            hostile.path(self.path_values),
            params=hostile.params,
            headers={**self.headers, **hostile.headers},
            content=hostile.content,
        )


@pytest_asyncio.fixture(scope="module")
async def target(infrastructure: Infrastructure) -> AsyncIterator[Target]:
    """The service once for the module, with a tenant, a key set, a member and an API key."""
    database = await create_test_database(infrastructure)
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
                consume_events=False,
            )
            async with running_app(create_app(settings)) as client:
                admin = auth_headers(settings, role=Role.PLATFORM_ADMIN, subject="operator")
                created = await client.post(
                    "/tenants", json={"name": "Hostile", "slug": "hostile"}, headers=admin
                )
                tenant = created.json()["id"]
                for method, path, body in [
                    ("POST", f"/tenants/{tenant}/activate", None),
                    ("PUT", f"/tenants/{tenant}/config/general.timezone", {"value": "UTC"}),
                    (
                        "POST",
                        f"/tenants/{tenant}/members",
                        {"user_id": "u1", "email": "u1@example.com", "role": "user"},
                    ),
                    (
                        "POST",
                        f"/tenants/{tenant}/api-keys",
                        {"name": "k", "scopes": ["tenant:read"]},
                    ),
                ]:
                    response = await client.request(method, path, json=body, headers=admin)
                    assert response.status_code < 300, response.text
                values = {
                    "id": tenant,
                    "slug": "hostile",
                    "key": "general.timezone",
                    "user_id": "u1",
                    "key_id": response.json()["id"],
                }
                yield Target(client, admin, values)
    finally:
        await drop_test_database(infrastructure, database)


@pytest.mark.parametrize("hostile", REQUESTS, ids=lambda r: r.id)
async def test_hostile_input_is_a_problem_never_a_server_error(
    target: Target, hostile: HostileRequest
) -> None:
    assert refusal_problem(await target.send(hostile)) is None


class TestTheRefusalNamesTheField:
    async def test_nan_in_a_config_value(self, target: Target) -> None:
        response = await target.client.put(
            f"/tenants/{target.path_values['id']}/config/general.timezone",
            content=b'{"value": NaN}',
            headers={**target.headers, "content-type": "application/json"},
        )
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["location"] for e in response.json()["errors"]] == ["body.value"]

    async def test_nul_deep_in_metadata(self, target: Target) -> None:
        response = await target.client.put(
            f"/tenants/{target.path_values['id']}",
            json={"metadata": {"team": ["ok", "a\x00b"]}},
            headers=target.headers,
        )
        assert response.status_code == 422
        assert [e["location"] for e in response.json()["errors"]] == ["body.metadata.team.1"]

    async def test_nul_in_a_query_parameter(self, target: Target) -> None:
        response = await target.client.get(
            "/tenants", params={"q": "a\x00b"}, headers=target.headers
        )
        assert response.status_code == 422
        assert [e["location"] for e in response.json()["errors"]] == ["query.q"]

    async def test_nul_in_a_path_parameter(self, target: Target) -> None:
        response = await target.client.get(
            f"/tenants/{target.path_values['id']}/members/a%00b", headers=target.headers
        )
        assert response.status_code == 422
        assert [e["location"] for e in response.json()["errors"]] == ["path.user_id"]

    async def test_nul_in_the_idempotency_key(self, target: Target) -> None:
        response = await target.client.put(
            f"/tenants/{target.path_values['id']}/config/general.timezone",
            json={"value": "UTC"},
            headers={**target.headers, "Idempotency-Key": "a\x00b"},
        )
        assert response.status_code == 422
        assert [e["location"] for e in response.json()["errors"]] == ["header.idempotency-key"]

    async def test_a_rollback_version_past_int32(self, target: Target) -> None:
        response = await target.client.post(
            f"/tenants/{target.path_values['id']}/config/general.timezone/rollback",
            json={"version": 2**31},
            headers=target.headers,
        )
        assert response.status_code == 422
        assert [e["location"] for e in response.json()["errors"]] == ["body.version"]

    async def test_the_bound_is_in_the_openapi_document(self, target: Target) -> None:
        document = (await target.client.get("/openapi.json")).json()
        version = document["components"]["schemas"]["RollbackRequest"]["properties"]["version"]
        assert version["maximum"] == 2**31 - 1

    async def test_an_expiry_past_the_calendar(self, target: Target) -> None:
        response = await target.client.post(
            f"/tenants/{target.path_values['id']}/api-keys",
            json={
                "name": "k",
                "scopes": ["tenant:read"],
                "expires_at": "9999-12-31T23:59:59-12:00",
            },
            headers=target.headers,
        )
        assert response.status_code == 422
        assert [e["location"] for e in response.json()["errors"]] == ["body.expires_at"]

    async def test_a_cursor_past_the_calendar_is_a_bad_cursor(self, target: Target) -> None:
        hostile = next(
            r for r in REQUESTS if r.id == "GET /tenants query.cursor=cursor-instant-max"
        )
        response = await target.send(hostile)
        assert response.status_code == 400
        assert response.json()["type"].endswith("bad-cursor")
