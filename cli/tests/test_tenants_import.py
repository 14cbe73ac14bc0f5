"""`stellara tenants import-users` against tenant-svc running in-process on real Kafka and PostgreSQL.

The service is served over real HTTP on a free local port (uvicorn in the
test's event loop); the command runs in a worker thread, as a user would run
it, with ``--service-url`` and the internal token it mints itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from click.testing import Result
from fastapi import FastAPI
from typer.testing import CliRunner

from gateway.main import create_app as create_gateway
from gateway.settings import Settings as GatewaySettings
from stellara_cli import tenants
from stellara_cli.main import app
from stellara_contracts.events import Role
from stellara_kit.migrations import upgrade_async
from stellara_kit.testing import (
    Infrastructure,
    TestDatabase,
    auth_headers,
    running_app,
    wait_for,
)
from tenant_svc.main import create_app
from tenant_svc.migrate import MIGRATIONS
from tenant_svc.settings import Settings

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

USERS_CSV = """\
Email,Role,User_ID,Name,Department
ada@acme.example,admin,,Ada Lovelace,R&D
alan@acme.example,user,auth0|42,"Turing, Alan",R&D
grace@acme.example,,,Grace Hopper,Navy
GRACE@acme.example,,,Grace again,Navy
linus@acme.example,,,Linus,Kernel
not-an-email,,,Nobody,
bob@acme.example,owner,,Bob,Sales
,,,No address at all,
eve@acme.example,user,,Eve,Sales,one cell too many
"""


@dataclass
class Service:
    url: str
    client: httpx.AsyncClient
    settings: Settings

    def admin(self) -> dict[str, str]:
        return auth_headers(self.settings, role=Role.PLATFORM_ADMIN, subject="operator")

    async def members(self, tenant: str) -> dict[str, dict[str, Any]]:
        response = await self.client.get(
            f"/tenants/{tenant}/members", params={"limit": 200}, headers=self.admin()
        )
        assert response.status_code == 200, response.text
        return {m["user_id"]: m for m in response.json()["items"]}


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` over HTTP on a free loopback port (its lifespan runs elsewhere)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_for(lambda: asyncio.sleep(0, server.started), timeout=10)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        sock.close()


@pytest_asyncio.fixture
async def service(
    infrastructure: Infrastructure, topic_prefix: str, test_database: TestDatabase
) -> AsyncIterator[Service]:
    await upgrade_async(MIGRATIONS, test_database.owner_url)
    settings = Settings(
        environment="test",
        database_url=test_database.runtime_url,
        migration_database_url=test_database.owner_url,
        kafka_bootstrap_servers=infrastructure.kafka_bootstrap,
        topic_prefix=topic_prefix,
        log_json=False,
        consume_events=False,
    )
    service_app = create_app(settings)
    async with running_app(service_app) as client, serve(service_app) as url:
        yield Service(url, client, settings)


@pytest_asyncio.fixture
async def gateway(service: Service) -> AsyncIterator[str]:
    """The gateway in front of that tenant-svc, its tenant directory read from tenant.state."""
    settings = GatewaySettings(
        environment="test",
        kafka_bootstrap_servers=service.settings.kafka_bootstrap_servers,
        topic_prefix=service.settings.topic_prefix,
        consumer_group=f"{service.settings.topic_prefix}gateway",
        log_json=False,
        tenant_svc_url=service.url,
    )
    gateway_app = create_gateway(settings)
    async with running_app(gateway_app) as client, serve(gateway_app) as url:
        await wait_for(
            lambda: client.get("/readyz"), until=lambda r: r.status_code == 200, timeout=30
        )
        yield url


async def stellara(*args: str) -> Result:
    """Run the command line in a thread (it runs its own event loop, as it would in a shell)."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


class TestImportUsers:
    async def test_good_duplicate_and_bad_rows_then_a_second_run_changes_nothing(
        self, service: Service, tmp_path: Path
    ) -> None:
        users = tmp_path / "users.csv"
        users.write_text(USERS_CSV, encoding="utf-8")
        response = await service.client.post(
            "/tenants/main/members",
            json={"user_id": "linus@acme.example", "email": "linus@acme.example"},
            headers=service.admin(),
        )
        assert response.status_code == 201, response.text
        report = tmp_path / "report.jsonl"

        first = await stellara(
            "tenants", "import-users", str(users), "--service-url", service.url,
            "--report", str(report),
        )  # fmt: skip

        assert first.exit_code == 1, first.output  # invalid rows make the exit code non-zero
        assert "ignoring columns this import does not know: department" in first.output
        members = await service.members("main")
        assert sorted(members) == [
            "ada@acme.example",
            "auth0|42",
            "grace@acme.example",
            "linus@acme.example",
        ]
        assert (members["ada@acme.example"]["role"], members["ada@acme.example"]["name"]) == (
            "tenant_admin",
            "Ada Lovelace",
        )
        assert (members["auth0|42"]["email"], members["auth0|42"]["name"]) == (
            "alan@acme.example",
            "Turing, Alan",
        )
        assert members["grace@acme.example"]["via"] == "import"
        outcomes = [json.loads(line) for line in report.read_text().splitlines()]
        assert [(r["line"], r["outcome"]) for r in outcomes] == [
            (2, "created"),
            (3, "created"),
            (4, "created"),
            (5, "skipped"),
            (6, "skipped"),
            (7, "invalid"),
            (8, "invalid"),
            (9, "invalid"),
            (10, "invalid"),
        ]
        reasons = {r["line"]: r["reason"] for r in outcomes}
        assert reasons[5] == "the same user as line 4"
        assert reasons[6] == "already a member"
        assert "email" in reasons[7] and "role" in reasons[8] and "columns" in reasons[10]
        assert "Main (main): 3 created, 2 skipped, 4 invalid, of 9 rows." in first.stdout
        assert "line 7: invalid:" in first.stdout

        second = await stellara(
            "tenants", "import-users", str(users), "--service-url", service.url,
            "--report", str(report),
        )  # fmt: skip

        assert second.exit_code == 1, second.output
        assert "0 created, 5 skipped, 4 invalid, of 9 rows." in second.stdout
        assert await service.members("main") == members
        again = [json.loads(line) for line in report.read_text().splitlines()]
        assert [r["outcome"] for r in again[:5]] == ["skipped"] * 5

    async def test_json_lines_into_a_named_tenant_in_small_batches(
        self, service: Service, tmp_path: Path
    ) -> None:
        created = await service.client.post(
            "/tenants", json={"name": "Acme", "slug": "acme"}, headers=service.admin()
        )
        assert created.status_code == 201, created.text
        users = tmp_path / "users.jsonl"
        users.write_text(
            "\n".join(
                [
                    *(json.dumps({"email": f"user{i}@acme.example"}) for i in range(7)),
                    json.dumps({"email": "root@acme.example", "user_id": 1, "role": "admin"}),
                    "",
                ]
            )
        )

        result = await stellara(
            "tenants", "import-users", str(users), "--service-url", service.url,
            "--tenant", "acme", "--batch-size", "3",
        )  # fmt: skip

        assert result.exit_code == 0, result.output
        members = await service.members("acme")
        assert len(members) == 8
        assert members["1"]["role"] == "tenant_admin"
        assert await service.members("main") == {}
        again = await stellara(
            "tenants", "import-users", str(users), "--service-url", service.url,
            "--tenant", "acme", "--batch-size", "3",
        )  # fmt: skip
        assert again.exit_code == 0, again.output
        assert "Acme (acme): 0 created, 8 skipped" in again.stdout

    async def test_through_the_gateway_with_a_development_token(
        self, service: Service, gateway: str, tmp_path: Path
    ) -> None:
        users = tmp_path / "users.csv"
        users.write_text("email,role\nada@acme.example,admin\nalan@acme.example,user\n")

        result = await stellara("tenants", "import-users", str(users), "--gateway", gateway)

        assert result.exit_code == 0, result.output
        assert "Main (main): 2 created, 0 skipped, 0 invalid, of 2 rows." in result.stdout
        members = await service.members("main")
        assert {m: members[m]["role"] for m in members} == {
            "ada@acme.example": "tenant_admin",
            "alan@acme.example": "user",
        }

    async def test_an_unknown_tenant_stops_before_anything_is_sent(
        self, service: Service, tmp_path: Path
    ) -> None:
        users = tmp_path / "users.csv"
        users.write_text("email\nada@acme.example\n")
        result = await stellara(
            "tenants", "import-users", str(users), "--service-url", service.url,
            "--tenant", "nobody",
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        assert "no tenant 'nobody'" in result.output
        assert await service.members("main") == {}

    async def test_credentials_the_service_refuses_are_explained(
        self, service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TENANT_SVC_INTERNAL_TOKEN_SECRET", "not-the-secret-the-service-uses-42")
        users = tmp_path / "users.csv"
        users.write_text("email\nada@acme.example\n")
        result = await stellara("tenants", "import-users", str(users), "--service-url", service.url)
        assert result.exit_code == 2, result.output
        assert "refused the credentials" in result.output
        assert await service.members("main") == {}


class TestFileProblems:
    """Refused before anything is sent: no system is needed."""

    def test_a_csv_without_a_usable_header_is_refused_with_an_example(self, tmp_path: Path) -> None:
        users = tmp_path / "users.csv"
        users.write_text("ada@acme.example,admin\n")
        result = CliRunner().invoke(
            app,
            ["tenants", "import-users", str(users), "--service-url", "http://127.0.0.1:9"],
        )
        assert result.exit_code == 2, result.output
        assert "email,role,user_id,name" in result.output

    def test_an_unreachable_system_says_what_to_do(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(tenants, "RETRY_BACKOFF_SECONDS", 0.0)
        users = tmp_path / "users.csv"
        users.write_text("email\nada@acme.example\n")
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        result = CliRunner().invoke(app, ["tenants", "import-users", str(users), "--gateway", url])
        assert result.exit_code == 2, result.output
        assert "make up" in result.output
