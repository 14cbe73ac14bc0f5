"""Row and advisory locks, spelled one way in every service.

Row locks: a repository read takes ``lock: RowLock`` (``"update"`` — ``FOR
UPDATE``, to change the rows; ``"share"`` — ``FOR SHARE``, to keep them from
changing while the transaction reads; ``None``) and applies it with
:func:`with_row_lock`. Background workers that share a queue claim rows with
``skip_locked=True``: a row another replica holds is passed over, not waited for.

Advisory locks guard what has no row to lock (two first writes of a key, a
relay's leadership): :func:`advisory_xact_lock` holds one until the
transaction ends; :func:`advisory_key` is the key of a lock a process holds on
a connection of its own (the outbox relay's). Each lock keeps the key it has
always had: a process of the previous release and one of this release,
running side by side on one database, must still exclude each other.
(Provisioning's cluster-wide lock, taken before any engine exists, keeps its
own ``hashtext('stellara.provision')``, which processes of every release take.)
"""

from __future__ import annotations

import zlib
from typing import Any, Literal, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

RowLock = Literal["update", "share"] | None

S = TypeVar("S", bound=Select[Any])


def with_row_lock(statement: S, lock: RowLock, *, skip_locked: bool = False) -> S:
    """``statement`` locking the rows it reads (``FOR UPDATE`` / ``FOR SHARE``), or as it is."""
    if lock is None:
        return statement
    return statement.with_for_update(read=lock == "share", skip_locked=skip_locked)


def advisory_key(name: str) -> int:
    """The advisory-lock key of a lock held on a connection of its own (the CRC-32 of
    ``name``)."""
    return zlib.crc32(name.encode())


async def advisory_xact_lock(session: AsyncSession, name: str) -> None:
    """Wait for, then hold until the transaction ends, the advisory lock ``name`` (keyed by
    PostgreSQL's ``hashtextextended(name, 0)``).

    Taking it again in the same transaction is free."""
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(name, 0))))
