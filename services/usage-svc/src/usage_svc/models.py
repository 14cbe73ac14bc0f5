"""usage-svc tables."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from stellara_kit.inbox import inbox_table
from stellara_kit.outbox import outbox_table


class Base(DeclarativeBase):
    metadata = MetaData()


metadata = Base.metadata
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
