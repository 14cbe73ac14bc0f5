"""The meter catalogue held in memory (read on every event) and refreshed from the database."""

from __future__ import annotations

import asyncio
import logging
import time

from stellara_kit.db import Database
from usage_svc import repository
from usage_svc.meters import DEFAULT_METERS, Meter

log = logging.getLogger(__name__)


class MeterCatalogue:
    def __init__(self, db: Database | None, *, refresh_seconds: float = 10.0) -> None:
        self.db = db
        self.refresh_seconds = refresh_seconds
        self._meters: dict[str, Meter] = {m.key: m for m in DEFAULT_METERS}
        #: metrics known to have data (their aggregation may no longer change)
        self.with_data: set[str] = set()
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    def get(self, key: str) -> Meter | None:
        return self._meters.get(key)

    def all(self) -> list[Meter]:
        return sorted(self._meters.values(), key=lambda m: m.key)

    def put(self, meter: Meter) -> None:
        self._meters[meter.key] = meter

    async def load(self) -> None:
        """Read the catalogue from the database."""
        if self.db is None:
            return
        async with self._lock:
            async with self.db.unscoped_transaction() as session:
                stored = await repository.list_meters(session)
            self._meters = {meter.key: meter for meter, _ in stored}
            self.with_data = {meter.key for meter, has_data in stored if has_data}
            self._loaded_at = time.monotonic()

    async def refresh_if_stale(self, *, min_age: float | None = None) -> bool:
        """Reload when older than ``min_age`` (default: the refresh interval)."""
        age = time.monotonic() - self._loaded_at
        if age < (self.refresh_seconds if min_age is None else min_age):
            return False
        try:
            await self.load()
        except Exception as exc:  # keep serving the catalogue held
            log.warning("could not reload the meter catalogue: %s", exc)
            return False
        return True
