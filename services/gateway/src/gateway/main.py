"""gateway: ``create_app(settings) -> FastAPI``; the lifespan starts broker, relay and subscribers."""

from __future__ import annotations

from fastapi import FastAPI

from gateway import api, events
from gateway.settings import Settings
from stellara_kit.runtime import ServiceRuntime


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, with_database=False)
    events.register(runtime)
    app = runtime.create_app(
        title="Stellara Tenancy API",
        description="The public API of Stellara Tenancy.",
    )
    app.include_router(api.router)
    return app
