"""gateway: ``create_app(settings) -> FastAPI``.

The lifespan starts the Kafka clients, the tenant directory (a background
task reading ``tenant.state``; `/readyz` waits for it) and the metering
publisher; at shutdown the metering buffer is flushed before the producer
stops, then the downstream connection pools close.
"""

from __future__ import annotations

import gc
import logging

from fastapi import FastAPI

from gateway import api, openapi
from gateway.auth import ApiKeys, Authenticator, InternalTokens, UserTokens, user_token_verifier
from gateway.downstream import Downstreams
from gateway.events import UsagePublisher, tenant_directory
from gateway.metering import Metering
from gateway.routes import Service
from gateway.service import Gateway
from gateway.settings import Settings
from stellara_kit.runtime import ServiceRuntime

DESCRIPTION = """The public API of Stellara Tenancy: tenants and their lifecycle, configuration,
members, API keys, usage (queries and ingestion), plans and meters, onboarding and invitations.

Sign in with a user token (`Authorization: Bearer <JWT>`) or a tenant API key
(`Authorization: ApiKey <key>` or `X-API-Key`). The tenant is the path's `{id}` (an id or a
slug), else the `x-tenant-id` header, the subdomain, the token's tenant, or the default tenant.
Errors are RFC 9457 problem+json."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, with_database=False)
    # one line per downstream call would cost more than the call: keep httpx to warnings
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))

    directory = tenant_directory(settings)
    runtime.add_background(directory.run)

    async def directory_ready() -> None:
        if not directory.ready.is_set():
            raise RuntimeError(
                f"catching up with {directory.topic} ({len(directory)} tenants so far)"
            )

    runtime.add_readiness_check("tenant_directory", directory_ready)

    downstreams = Downstreams(settings)
    tokens = InternalTokens(settings)
    authenticator = Authenticator(
        UserTokens(user_token_verifier(settings)),
        ApiKeys(settings, downstreams.client(Service.TENANT), tokens),
    )
    publisher = UsagePublisher(settings)
    metering = (
        Metering(settings, publisher, runtime.registry) if settings.metering_enabled else None
    )

    async def freeze_startup_objects() -> None:
        # what start-up built (routes, schemas, models) lives for ever: keeping it out of
        # the collector's generations makes the periodic full collections short
        gc.collect()
        gc.freeze()

    async def unfreeze() -> None:
        gc.unfreeze()

    runtime.on_start(freeze_startup_objects)
    runtime.on_stop(unfreeze)
    # stop hooks run in reverse: flush metering, then stop the producer, then close the pools
    runtime.on_stop(downstreams.close)
    runtime.on_start(publisher.start)
    runtime.on_stop(publisher.stop)
    if metering is not None:
        runtime.add_background(metering.run)
        runtime.on_stop(metering.flush)

    app = runtime.create_app(
        title="Stellara Tenancy API",
        version="1.0.0",
        description=DESCRIPTION,
        asgi_middleware=True,  # the request-context middleware without a task per request
        check_bodies=False,  # bodies stream on to the owning service, which checks them
    )
    app.state.parts = Gateway(
        settings,
        directory=directory,
        authenticator=authenticator,
        downstreams=downstreams,
        tokens=tokens,
        publisher=publisher,
        metering=metering,
    )
    app.include_router(api.build_router())
    openapi.install_openapi(app, max_events=settings.max_batch_events)
    return app
