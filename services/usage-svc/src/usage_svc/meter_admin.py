"""Adding and redefining meters (platform admins)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from usage_svc import repository
from usage_svc.errors import MeterAggregationLocked
from usage_svc.meters import Meter


async def list_meters(session: AsyncSession) -> list[tuple[Meter, bool]]:
    return await repository.list_meters(session)


async def save_meter(session: AsyncSession, meter: Meter) -> tuple[Meter, bool, bool]:
    """Add ``meter`` or update the one with its key; returns (meter, has data, created).

    Once a meter has data its aggregation (and counted property) are fixed: the
    figures already folded would mean something else. A new key is the way.
    """
    if await repository.insert_meter(session, meter):
        return meter, False, True
    existing = await repository.get_meter(session, meter.key, lock="update")
    assert existing is not None  # meters are never deleted
    current, has_data = existing
    redefined = (current.aggregation, current.unique_property) != (
        meter.aggregation,
        meter.unique_property,
    )
    if redefined and has_data:
        raise MeterAggregationLocked(
            f"Meter {meter.key!r} has data aggregated as {current.aggregation}; its aggregation "
            "cannot change. Add a meter with a new key instead.",
            meter=meter.key,
            aggregation=str(current.aggregation),
        )
    await repository.update_meter(session, meter)
    return meter, has_data, False
