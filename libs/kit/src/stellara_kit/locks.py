"""Row and advisory locks, spelled one way in every service.

Row locks: a repository read takes ``lock: RowLock`` (``"update"`` — ``FOR
UPDATE``, to change the rows; ``"share"`` — ``FOR SHARE``, to keep them from
changing while the transaction reads; ``None``) and applies it with
:func:`with_row_lock`. Background workers that share a queue claim rows with
``skip_locked=True``: a row another replica holds is passed over, not waited for.

Advisory locks guard what has no row to lock (two first writes of a key, a
relay's leadership): :func:`advisory_key` turns a name into the lock's key,
the same in every process and release; :func:`advisory_xact_lock` holds one
until the transaction ends.
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
    """A stable advisory-lock key for ``name`` (its CRC-32)."""
    return zlib.crc32(name.encode())


async def advisory_xact_lock(session: AsyncSession, name: str) -> None:
    """Wait for, then hold until the transaction ends, the advisory lock ``name``.

    Taking it again in the same transaction is free."""
    await session.execute(select(func.pg_advisory_xact_lock(advisory_key(name))))
