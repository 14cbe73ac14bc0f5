"""onboarding-svc: ``create_app(settings) -> FastAPI``; the lifespan starts broker, relay and subscribers."""

from __future__ import annotations

from fastapi import FastAPI

from onboarding_svc import api, events, models
from onboarding_svc.settings import Settings
from stellara_kit.runtime import ServiceRuntime


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, outbox_table=models.outbox, inbox_table=models.inbox)
    events.register(runtime)
    app = runtime.create_app(
        title="Stellara onboarding-svc",
        description="Onboarding workflows and admin invitations.",
    )
    app.include_router(api.router)
    return app
