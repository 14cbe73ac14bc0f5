"""Alembic, the same way in every service.

Each service keeps its migrations inside its package (``<pkg>/migrations``,
so they ship with it) with a three-line ``env.py``::

    from stellara_kit.migrations import run_env
    from tenant_svc.models import metadata
    run_env(metadata)

and runs them with ``python -m <pkg>.migrate`` (the schema owner's URL from
its settings), or from tests with :func:`upgrade_async`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.ext.asyncio import create_async_engine

from stellara_kit.db import sqlalchemy_url


def alembic_config(script_location: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def upgrade(script_location: Path, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(script_location, url), revision)


async def upgrade_async(script_location: Path, url: str, revision: str = "head") -> None:
    """Run migrations from async code (Alembic's async env needs its own loop)."""
    await asyncio.to_thread(upgrade, script_location, url, revision)


def run_env(metadata: MetaData) -> None:
    """The body of every service's ``migrations/env.py``."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url, metadata))


async def _run_online(url: str, metadata: MetaData) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_configure_and_run, metadata)
    await engine.dispose()


def _configure_and_run(connection: Any, metadata: MetaData) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def main(script_location: Path, url: str) -> int:
    """``python -m <pkg>.migrate``: upgrade to head, say so."""
    try:
        upgrade(script_location, url)
    except Exception as exc:
        print(f"migration failed: {exc}", file=sys.stderr)
        return 1
    print("database is at the newest revision")
    return 0
