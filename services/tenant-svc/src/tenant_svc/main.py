"""tenant-svc: ``create_app(settings) -> FastAPI``; the lifespan starts broker, relay and subscribers."""

from __future__ import annotations

from fastapi import FastAPI

from stellara_kit.runtime import ServiceRuntime
from tenant_svc import api, events, models
from tenant_svc.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, outbox_table=models.outbox, inbox_table=models.inbox)
    events.register(runtime)
    app = runtime.create_app(
        title="Stellara tenant-svc",
        description="Tenants and their lifecycle, configuration, members and API keys.",
    )
    app.include_router(api.router)
    return app
