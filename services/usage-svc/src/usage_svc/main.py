"""usage-svc: ``create_app(settings) -> FastAPI``; the lifespan starts broker, relay and subscribers.

Beside the HTTP routes the process runs, as background tasks: the tenant
directory (``tenant.state``), the usage ingester (``usage.recorded``, batch
consumer), the billing-period closer and the partition keeper.
"""

from __future__ import annotations

from fastapi import FastAPI

from stellara_contracts import topics
from stellara_kit.errors import install_domain_errors
from stellara_kit.runtime import ServiceRuntime
from stellara_kit.tenant_directory import TenantDirectory
from usage_svc import api, events, models
from usage_svc.billing import BillingPeriodCloser
from usage_svc.deps import UsageParts, tenant_units
from usage_svc.errors import PROBLEMS
from usage_svc.ingest.consumer import IngestFaults, UsageIngester
from usage_svc.maintenance import PartitionKeeper
from usage_svc.meter_catalogue import MeterCatalogue
from usage_svc.settings import Settings


def create_app(settings: Settings | None = None, *, faults: IngestFaults | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, outbox_table=models.outbox, inbox_table=models.inbox)
    assert runtime.db is not None
    directory = TenantDirectory(
        settings.kafka_bootstrap_servers, topic=settings.topic(topics.TENANT_STATE)
    )
    meters = MeterCatalogue(runtime.db, refresh_seconds=settings.meter_refresh_seconds)
    ingester = UsageIngester(
        runtime=runtime, settings=settings, directory=directory, meters=meters, faults=faults
    )
    closer = BillingPeriodCloser(
        runtime=runtime, settings=settings, directory=directory, meters=meters
    )
    keeper = PartitionKeeper(runtime=runtime, settings=settings)

    events.register(runtime, settings)
    runtime.on_start(meters.load)
    runtime.add_background(directory.run)
    runtime.add_background(keeper.run)
    runtime.add_background(ingester.run)
    runtime.add_background(closer.run)

    async def directory_ready() -> None:
        if not directory.ready.is_set():
            raise RuntimeError("the tenant directory is still reading tenant.state")

    runtime.add_readiness_check("tenant_directory", directory_ready)

    app = runtime.create_app(
        title="Stellara usage-svc",
        description="Usage metering: ingestion with exact dedup, aggregates, queries, quotas "
        "and billing figures.",
    )
    install_domain_errors(app, PROBLEMS)
    app.state.parts = UsageParts(
        settings=settings,
        db=runtime.db,
        directory=directory,
        meters=meters,
        tenant_unit=tenant_units(runtime.db, directory),
    )
    app.state.ingester = ingester
    app.state.billing = closer
    app.state.partitions = keeper
    app.include_router(api.router)
    return app
