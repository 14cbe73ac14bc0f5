"""tenant-svc: ``create_app(settings) -> FastAPI``; the lifespan starts broker, relay and subscribers.

At start the default tenant (``default_tenant_slug``) is created once,
active, for single-tenant callers; a background task forgets expired
idempotency keys.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from fastapi import FastAPI

from stellara_kit.errors import install_domain_errors
from stellara_kit.problems import refine_openapi
from stellara_kit.runtime import ServiceRuntime
from tenant_svc import api, events, models
from tenant_svc.config.catalogue import ConfigCatalogue
from tenant_svc.deps import TenantParts, tenant_units
from tenant_svc.errors import PROBLEMS
from tenant_svc.idempotency import IdempotencyStore, document_replays
from tenant_svc.settings import Settings
from tenant_svc.tenants.service import ensure_default_tenant

log = logging.getLogger(__name__)

PURGE_INTERVAL_SECONDS = 3600.0

DESCRIPTION = """\
Tenants and their lifecycle, per-tenant configuration (defaults, schemas, history),
members with roles, and tenant API keys.

Identity: every request carries the gateway's short-lived internal token
(`Authorization: Bearer …`). `platform_admin` may do everything; `tenant_admin`
manages its own tenant's configuration, members and API keys and reads/updates its
tenant; `user` reads its own tenant. Another tenant's objects are 404.

Errors are RFC 9457 problem+json. Writes accept `Idempotency-Key`. Lists page with
`cursor`/`limit`. `{id}` is a tenant id or its slug; configuration keys in paths are
written `category.key`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    catalogue = ConfigCatalogue.from_settings(settings)
    runtime = ServiceRuntime(settings, outbox_table=models.outbox, inbox_table=models.inbox)
    assert runtime.db is not None and runtime.sink is not None
    parts = TenantParts(
        settings=settings,
        db=runtime.db,
        sink=runtime.sink,
        catalogue=catalogue,
        idempotency=IdempotencyStore(
            retention=timedelta(hours=settings.idempotency_retention_hours)
        ),
        tenant_unit=tenant_units(runtime.db),
    )
    if settings.consume_events:
        events.register(runtime, parts)

    async def create_default_tenant() -> None:
        async with parts.db.system_transaction() as session:
            created = await ensure_default_tenant(session, parts.sink, settings)
        if created is not None:
            log.info("created the default tenant %r (%s)", created.slug, created.id)

    async def purge_idempotency_keys() -> None:
        while True:
            async with parts.db.system_transaction() as session:
                purged = await parts.idempotency.purge_expired(session)
            if purged:
                log.info("forgot %d expired idempotency keys", purged)
            await asyncio.sleep(PURGE_INTERVAL_SECONDS)

    runtime.on_start(create_default_tenant)
    runtime.add_background(purge_idempotency_keys)
    app = runtime.create_app(title="Stellara tenant-svc", description=DESCRIPTION)
    app.state.parts = parts
    install_domain_errors(app, PROBLEMS)
    app.include_router(api.router)
    refine_openapi(app, document_replays)
    return app
