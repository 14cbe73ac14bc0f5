"""Engines, units of work and the tenant context that row-level security reads.

Every transaction says whose data it touches: ``Database.transaction(tenant_id)``
sets ``app.tenant_id`` with ``set_config(..., true)`` (= ``SET LOCAL``), which
ends with the transaction, so a pooled connection never carries a tenant
into the next one. Cross-tenant work says so: ``Database.system_transaction()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

TENANT_SETTING = "app.tenant_id"
SYSTEM_SETTING = "app.system"

_SET_TENANT = text(f"SELECT set_config('{TENANT_SETTING}', :tenant, true)")
_SET_SYSTEM = text(f"SELECT set_config('{SYSTEM_SETTING}', 'on', true)")


def connection_lost(exc: BaseException) -> bool:
    """Whether the error (or one it was raised from) is a lost or refused connection — the
    database restarting, unreachable or cutting connections: not the fault of the request or
    record at hand, and worth retrying once it is back."""
    lost = (
        ConnectionError,
        PoolTimeout,
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
        asyncpg.ConnectionDoesNotExistError,
        asyncpg.exceptions.OperatorInterventionError,  # shutdown, crash of another backend
    )
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, lost):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        pending += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    return False


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy URL as a plain libpq/asyncpg DSN."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sqlalchemy_url(url: str) -> str:
    """Any PostgreSQL URL as a SQLAlchemy asyncpg URL."""
    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


class Database:
    """One async engine per process and the units of work on it."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = sqlalchemy_url(url)
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            echo=echo,
        )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self, tenant_id: UUID | str) -> AsyncIterator[AsyncSession]:
        """A unit of work for one tenant: commits on success, rolls back on error."""
        async with self.sessionmaker() as session, session.begin():
            await session.execute(_SET_TENANT, {"tenant": str(tenant_id)})
            yield session

    @asynccontextmanager
    async def system_transaction(self) -> AsyncIterator[AsyncSession]:
        """A unit of work across tenants (ingesters, platform admin listings)."""
        async with self.sessionmaker() as session, session.begin():
            await session.execute(_SET_SYSTEM)
            yield session

    @asynccontextmanager
    async def unscoped_transaction(self) -> AsyncIterator[AsyncSession]:
        """A unit of work with no tenant at all: row-level security shows no tenant rows."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


async def set_tenant(session: AsyncSession, tenant_id: UUID | str) -> None:
    """Switch the tenant inside an open transaction (e.g. per event in a system task)."""
    await session.execute(_SET_TENANT, {"tenant": str(tenant_id)})


async def asyncpg_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session (inside its open transaction), for what
    SQLAlchemy does not offer: COPY, and statements run at driver speed on a hot path."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, asyncpg.Connection)
    return driver
