"""Cursor pagination: opaque cursors over a stable ordering, and the page every list answers.

A cursor is the position of a page's last row (its ordering columns, as text) in
a JSON list, base64url without padding. A cursor the service did not hand out
(not base64 JSON, the wrong arity, a value out of range) is :class:`BadCursor`,
a 400 ``bad-cursor`` in every service.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, Field

from stellara_kit.bounds import bounded_int, supported_instant
from stellara_kit.errors import BadCursor
from stellara_kit.strict_input import unstorable

T = TypeVar("T")
Row = TypeVar("Row")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``cursor`` to get the next one."""

    items: list[T]
    next_cursor: str | None = Field(
        default=None,
        description="Cursor of the next page; absent on the last page.",
        examples=["WyIyMDI2LTEyLTAxVDEwOjAwOjAwKzAwOjAwIiwiNWIwYyJd"],
    )


def encode_cursor(*position: Any) -> str:
    """An opaque cursor for the position after which the next page starts."""
    raw = json.dumps([str(p) for p in position], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[str]:
    """The position a cursor names; a cursor this service did not hand out is a 400."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("The cursor is not one this service handed out.") from exc
    if not isinstance(values, list) or len(values) != arity:
        raise BadCursor("The cursor is not one this service handed out.")
    if not all(isinstance(v, str) and not unstorable(v) for v in values):
        raise BadCursor("The cursor is not one this service handed out.")
    return values


def cursor_instant(position: str) -> datetime:
    """An instant a cursor holds (one this service wrote: aware, in range)."""
    try:
        instant = supported_instant(datetime.fromisoformat(position))
    except ValueError:
        instant = None
    if instant is None:
        raise BadCursor("The cursor is not one this service handed out.")
    return instant


def cursor_uuid(position: str) -> UUID:
    try:
        return UUID(position)
    except ValueError as exc:
        raise BadCursor("The cursor is not one this service handed out.") from exc


def cursor_id(position: str) -> int:
    """A row id (``bigint``) a cursor holds."""
    value = bounded_int(position)
    if value is None:
        raise BadCursor("The cursor is not one this service handed out.")
    return value


def next_page(
    rows: Sequence[Row], size: int, position: Callable[[Row], tuple[Any, ...]]
) -> tuple[list[Row], str | None]:
    """The first ``size`` of ``rows`` (fetched as ``size + 1``) and the cursor after them, if
    there is more; ``position`` names a row's place in the ordering."""
    page = list(rows[:size])
    more = len(rows) > size
    return page, encode_cursor(*position(page[-1])) if more and page else None
