"""Databases and roles: one database per service, an owner role and a runtime role.

The owner role runs migrations and owns every table; the runtime role the
service connects as owns nothing and has neither SUPERUSER nor BYPASSRLS, so
row-level security applies to it. Only these two roles may connect to the
database. The same shape is used by the local stack, the test fixtures and
``deploy/postgres/init.sql``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return name


@dataclass(frozen=True)
class DatabaseRoles:
    database: str
    owner: str
    runtime: str

    @classmethod
    def for_service(cls, service: str) -> DatabaseRoles:
        """``tenant-svc`` → database ``tenant_svc``, roles ``tenant_svc_owner`` and ``tenant_svc``."""
        base = service.replace("-", "_")
        return cls(database=base, owner=f"{base}_owner", runtime=base)

    def url(self, host: str, port: int, *, owner: bool = False, password: str | None = None) -> str:
        user = self.owner if owner else self.runtime
        auth = f"{user}:{password}" if password else user
        return f"postgresql+asyncpg://{auth}@{host}:{port}/{self.database}"


async def ensure_role(conn: asyncpg.Connection, role: str, *, password: str | None = None) -> None:
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    options = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
    if not exists:
        await conn.execute(f"CREATE ROLE {_ident(role)} {options}")
    if password:
        escaped = password.replace("'", "''")
        await conn.execute(f"ALTER ROLE {_ident(role)} PASSWORD '{escaped}'")


async def provision_database(
    admin_dsn: str, roles: DatabaseRoles, *, password: str | None = None
) -> bool:
    """Create (idempotently) the roles and the database; returns True if the database is new."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await ensure_role(conn, roles.owner, password=password)
        await ensure_role(conn, roles.runtime, password=password)
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", roles.database)
        if not exists:
            await conn.execute(
                f"CREATE DATABASE {_ident(roles.database)} OWNER {_ident(roles.owner)} "
                "TEMPLATE template0 ENCODING 'UTF8'"
            )
        db = _ident(roles.database)
        await conn.execute(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
        await conn.execute(
            f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {roles.owner}, {roles.runtime}"
        )
    finally:
        await conn.close()

    db_conn = await asyncpg.connect(_with_database(admin_dsn, roles.database))
    try:
        owner, runtime = _ident(roles.owner), _ident(roles.runtime)
        await db_conn.execute(f"ALTER SCHEMA public OWNER TO {owner}")
        await db_conn.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {runtime}")
        await db_conn.execute(f"GRANT USAGE ON SCHEMA public TO {runtime}")
        await db_conn.execute(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {runtime}"
        )
        await db_conn.execute(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
            f"GRANT USAGE, SELECT ON SEQUENCES TO {runtime}"
        )
        await db_conn.execute(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
            f"GRANT EXECUTE ON FUNCTIONS TO {runtime}"
        )
    finally:
        await db_conn.close()
    return not exists


async def drop_database(admin_dsn: str, database: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_ident(database)} WITH (FORCE)")
    finally:
        await conn.close()


def _with_database(dsn: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(dsn).set(database=database).render_as_string(hide_password=False)
