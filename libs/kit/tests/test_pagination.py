"""One cursor codec: what it hands out it reads back; anything else is a bad cursor."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from stellara_kit.errors import BadCursor
from stellara_kit.pagination import (
    cursor_id,
    cursor_instant,
    cursor_uuid,
    decode_cursor,
    encode_cursor,
    next_page,
)

ID = UUID("5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11")
AT = datetime(2026, 12, 1, 10, tzinfo=UTC)


class TestCursors:
    def test_a_cursor_reads_back_as_its_position(self) -> None:
        created, ident = decode_cursor(encode_cursor(AT.isoformat(), ID), 2)
        assert (cursor_instant(created), cursor_uuid(ident)) == (AT, ID)
        assert cursor_id(decode_cursor(encode_cursor(42), 1)[0]) == 42

    @pytest.mark.parametrize("cursor", ["garbage!", "nonsense", encode_cursor("a", "b", "c")])
    def test_a_foreign_cursor_is_refused(self, cursor: str) -> None:
        with pytest.raises(BadCursor):
            decode_cursor(cursor, 2)

    def test_a_naive_instant_is_refused(self) -> None:
        with pytest.raises(BadCursor):
            cursor_instant("2026-12-01T00:00:00")


class TestNextPage:
    def test_more_rows_than_the_page_give_a_cursor_after_its_last(self) -> None:
        rows, cursor = next_page([1, 2, 3], 2, lambda n: (n,))
        assert rows == [1, 2]
        assert cursor is not None and decode_cursor(cursor, 1) == ["2"]

    def test_the_last_page_has_no_cursor(self) -> None:
        assert next_page([1, 2], 2, lambda n: (n,)) == ([1, 2], None)
        assert next_page([], 2, lambda n: (n,)) == ([], None)
