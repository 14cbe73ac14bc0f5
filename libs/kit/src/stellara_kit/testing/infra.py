"""Finding real Kafka and PostgreSQL for tests.

In this order: environment variables (``KAFKA_BOOTSTRAP_SERVERS`` and an
admin ``DATABASE_URL``); a container engine through testcontainers; otherwise
the local infrastructure (``stellara_devstack``), started here and stopped at the end if
this run started it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from stellara_kit.db import asyncpg_dsn, sqlalchemy_url
from stellara_kit.provision import DatabaseRoles, drop_database, provision_database

TEST_OWNER = "stellara_test_owner"
TEST_RUNTIME = "stellara_test_app"


@dataclass(frozen=True)
class Infrastructure:
    kafka_bootstrap: str
    pg_admin_url: str
    source: str


@dataclass(frozen=True)
class TestDatabase:
    """A fresh database for one test, with an owner role and an RLS-bound runtime role."""

    __test__ = False  # not a test class

    name: str
    admin_url: str
    owner_url: str
    runtime_url: str


def _container_engine_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def discover() -> tuple[Infrastructure, Callable[[], None] | None]:
    """The infrastructure to use, and how to stop what this call started (or None)."""
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database = os.environ.get("DATABASE_URL")
    if kafka and database:
        return Infrastructure(kafka, asyncpg_dsn(database), "environment"), None

    if _container_engine_available():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        pg = PostgresContainer("postgres:18", username="postgres", password="postgres")
        kafka_container = KafkaContainer("apache/kafka:4.1.1").with_kraft()
        pg.start()
        kafka_container.start()

        def stop_containers() -> None:
            with contextlib.suppress(Exception):
                kafka_container.stop()
            with contextlib.suppress(Exception):
                pg.stop()

        return (
            Infrastructure(
                kafka_container.get_bootstrap_server(),
                asyncpg_dsn(pg.get_connection_url()),
                "containers",
            ),
            stop_containers,
        )

    from stellara_devstack import LocalInfrastructure

    stack = LocalInfrastructure()
    started = stack.up_infrastructure()

    def stop_stack() -> None:
        if started.get("kafka"):
            stack.kafka.stop()
        if started.get("postgres"):
            stack.postgres.stop()

    return (
        Infrastructure(stack.config.kafka_bootstrap, stack.config.pg_admin_url, "local stack"),
        stop_stack if any(started.values()) else None,
    )


async def create_test_database(infra: Infrastructure) -> TestDatabase:
    name = f"test_{uuid.uuid4().hex[:16]}"
    roles = DatabaseRoles(database=name, owner=TEST_OWNER, runtime=TEST_RUNTIME)
    await provision_database(infra.pg_admin_url, roles, password="test")
    from sqlalchemy.engine import make_url

    base = make_url(sqlalchemy_url(infra.pg_admin_url)).set(database=name)
    return TestDatabase(
        name=name,
        admin_url=base.render_as_string(hide_password=False),
        owner_url=base.set(username=TEST_OWNER, password="test").render_as_string(
            hide_password=False
        ),
        runtime_url=base.set(username=TEST_RUNTIME, password="test").render_as_string(
            hide_password=False
        ),
    )


async def drop_test_database(infra: Infrastructure, database: TestDatabase) -> None:
    await drop_database(infra.pg_admin_url, database.name)
