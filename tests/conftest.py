"""The whole system as real processes on real Kafka and PostgreSQL, for system tests.

``system`` starts, once per module, the four services (uvicorn processes),
each with a fresh database and the module's own topic names, plus the SMTP
sink; tests drive it through the gateway and can restart a service or add
a replica.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from stellara_cli.demo import Target
from stellara_cli.stack import ServiceSpec, service_specs
from stellara_contracts import topics
from stellara_kit.db import sqlalchemy_url
from stellara_kit.kafka_admin import delete_topics, ensure_topics
from stellara_kit.provision import DatabaseRoles, drop_database, provision_database
from stellara_kit.testing import Infrastructure
from stellara_kit.testing.infra import TEST_OWNER, TEST_RUNTIME

JWT_SECRET = "system-test-jwt-secret-of-enough-length"
INTERNAL_SECRET = "system-test-internal-secret-of-enough-length"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningService:
    spec: ServiceSpec
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class System:
    infra: Infrastructure
    topic_prefix: str
    workdir: Path
    mail_folder: Path
    services: dict[str, RunningService] = field(default_factory=dict)
    replicas: list[RunningService] = field(default_factory=list)

    @property
    def gateway_url(self) -> str:
        return self.services["gateway"].url

    def target(self) -> Target:
        """How the demo story speaks to this system."""
        from stellara_kit.auth import UserTokenSettings

        defaults = UserTokenSettings()
        return Target(
            gateway_url=self.gateway_url,
            kafka_bootstrap=self.infra.kafka_bootstrap,
            mail_folder=self.mail_folder,
            jwt_secret=JWT_SECRET,
            jwt_audience=defaults.jwt_audience,
            jwt_issuer=defaults.jwt_issuer,
            topic_prefix=self.topic_prefix,
            timeout=90,
        )

    def start(self, service: RunningService) -> None:
        with open(service.log, "ab") as log:
            service.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    f"{service.spec.package}.main:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(service.port),
                    "--no-access-log",
                ],
                env=service.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def wait_ready(self, service: RunningService, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert service.process is not None
            if service.process.poll() is not None:
                raise AssertionError(
                    f"{service.spec.name} exited:\n{service.log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{service.spec.name} not ready:\n{service.log.read_text()[-3000:]}")

    def stop(self, service: RunningService, *, kill: bool = False) -> None:
        if service.process is None or service.process.poll() is not None:
            return
        service.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            service.process.wait(20)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait(5)

    def restart(self, name: str, *, kill: bool = False) -> None:
        service = self.services[name]
        self.stop(service, kill=kill)
        self.start(service)
        self.wait_ready(service)

    def add_replica(self, name: str) -> RunningService:
        original = self.services[name]
        port = free_port()
        env = dict(original.env, **{f"{original.spec.env_prefix}HTTP_PORT": str(port)})
        replica = RunningService(
            original.spec, port, env, self.workdir / f"{name}-replica{len(self.replicas)}.log"
        )
        self.replicas.append(replica)
        self.start(replica)
        self.wait_ready(replica)
        return replica


def _service_env(
    spec: ServiceSpec,
    infra: Infrastructure,
    prefix: str,
    databases: dict[str, DatabaseRoles],
    ports: dict[str, int],
    mail_port: int,
) -> dict[str, str]:
    p = spec.env_prefix
    env = dict(os.environ)
    env.update(
        {
            f"{p}ENVIRONMENT": "test",
            f"{p}KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
            f"{p}TOPIC_PREFIX": prefix,
            f"{p}CONSUMER_GROUP": f"{prefix}{spec.name}",
            f"{p}HTTP_PORT": str(ports[spec.name]),
            f"{p}INTERNAL_TOKEN_SECRET": INTERNAL_SECRET,
            f"{p}LOG_JSON": "true",
        }
    )
    if spec.name in databases:
        roles = databases[spec.name]
        base = sqlalchemy_url(infra.pg_admin_url)
        from sqlalchemy.engine import make_url

        url = make_url(base).set(database=roles.database)
        env[f"{p}DATABASE_URL"] = url.set(username=TEST_RUNTIME, password="test").render_as_string(
            hide_password=False
        )
        env[f"{p}MIGRATION_DATABASE_URL"] = url.set(
            username=TEST_OWNER, password="test"
        ).render_as_string(hide_password=False)
    if spec.name == "onboarding-svc":
        env.update(
            {
                f"{p}SMTP_HOST": "127.0.0.1",
                f"{p}SMTP_PORT": str(mail_port),
                f"{p}ACCEPT_URL_TEMPLATE": f"http://127.0.0.1:{ports['gateway']}/invitations/{{token}}/accept",
            }
        )
    if spec.name == "gateway":
        env.update(
            {
                "GATEWAY_JWT_SECRET": JWT_SECRET,
                "GATEWAY_TENANT_SVC_URL": f"http://127.0.0.1:{ports['tenant-svc']}",
                "GATEWAY_USAGE_SVC_URL": f"http://127.0.0.1:{ports['usage-svc']}",
                "GATEWAY_ONBOARDING_SVC_URL": f"http://127.0.0.1:{ports['onboarding-svc']}",
            }
        )
    return env


@pytest.fixture(scope="module")
def system(
    infrastructure: Infrastructure, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    prefix = f"e{uuid.uuid4().hex[:8]}."
    workdir = tmp_path_factory.mktemp("system")
    names = [f"{prefix}{t}" for t in topics.ALL_TOPICS] + [
        f"{prefix}{topics.dlq_topic(t)}" for t in topics.ALL_TOPICS
    ]
    asyncio.run(
        ensure_topics(
            infrastructure.kafka_bootstrap,
            names,
            partitions=2,
            compacted={f"{prefix}{t}" for t in topics.COMPACTED_TOPICS},
        )
    )
    specs = service_specs()
    databases = {
        spec.name: DatabaseRoles(f"sys_{prefix[1:-1]}_{spec.package}", TEST_OWNER, TEST_RUNTIME)
        for spec in specs
        if spec.database
    }

    async def provision() -> None:
        for roles in databases.values():
            await provision_database(infrastructure.pg_admin_url, roles, password="test")

    asyncio.run(provision())
    ports = {spec.name: free_port() for spec in specs}
    mail_port = free_port()
    mail_folder = workdir / "mail"
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stellara_cli.mailsink",
            "--port",
            str(mail_port),
            "--dir",
            str(mail_folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    running = System(infrastructure, prefix, workdir, mail_folder)
    try:
        for spec in specs:
            env = _service_env(spec, infrastructure, prefix, databases, ports, mail_port)
            service = RunningService(spec, ports[spec.name], env, workdir / f"{spec.name}.log")
            if spec.database:
                subprocess.run(
                    [sys.executable, "-m", f"{spec.package}.migrate"],
                    env=env,
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
            running.services[spec.name] = service
            running.start(service)
        for service in running.services.values():
            running.wait_ready(service)
        yield running
    finally:
        for service in [*running.replicas, *running.services.values()]:
            running.stop(service)
        sink.terminate()
        sink.wait(10)

        async def cleanup() -> None:
            for roles in databases.values():
                await drop_database(infrastructure.pg_admin_url, roles.database)
            await delete_topics(infrastructure.kafka_bootstrap, names)

        asyncio.run(cleanup())


@pytest_asyncio.fixture
async def gateway(system: System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as client:
        yield client
