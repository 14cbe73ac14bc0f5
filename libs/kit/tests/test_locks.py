"""Row locks read as the SQL they add; advisory keys stay the same across releases."""

from __future__ import annotations

import zlib

from sqlalchemy import column, select, table
from sqlalchemy.dialects import postgresql

from stellara_kit.locks import RowLock, advisory_key, with_row_lock
from stellara_kit.outbox import advisory_lock_key

ROWS = table("rows", column("id"))


def _sql(lock: RowLock, *, skip_locked: bool = False) -> str:
    statement = with_row_lock(select(ROWS), lock, skip_locked=skip_locked)
    return str(statement.compile(dialect=postgresql.dialect()))


class TestRowLocks:
    def test_each_lock_is_its_clause(self) -> None:
        assert _sql(None).endswith("FROM rows")
        assert _sql("update").endswith("FOR UPDATE")
        assert _sql("share").endswith("FOR SHARE")
        assert _sql("update", skip_locked=True).endswith("FOR UPDATE SKIP LOCKED")


class TestAdvisoryKeys:
    def test_a_name_has_one_key_and_the_relay_keeps_its_own(self) -> None:
        assert advisory_key("tenant-config:a") == advisory_key("tenant-config:a")
        assert advisory_key("tenant-config:a") != advisory_key("tenant-config:b")
        assert advisory_lock_key("tenant-svc") == zlib.crc32(b"stellara-outbox:tenant-svc")
