"""onboarding-svc: ``create_app(settings) -> FastAPI``; the lifespan starts broker, relay,
subscribers, the invitation mail sender and the expiry sweeper."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from onboarding_svc import api, events, models
from onboarding_svc.background import ExpirySweeper, InvitationSender
from onboarding_svc.definitions import load_catalogue
from onboarding_svc.deps import OnboardingParts, tenant_units
from onboarding_svc.errors import PROBLEMS
from onboarding_svc.invitations import Invitations
from onboarding_svc.mail import Mailer, SmtpMailer
from onboarding_svc.service import Onboarding
from onboarding_svc.settings import Settings
from stellara_kit.errors import install_domain_errors
from stellara_kit.runtime import ServiceRuntime


def create_app(settings: Settings | None = None, *, mailer: Mailer | None = None) -> FastAPI:
    settings = settings or Settings()
    catalogue = load_catalogue(settings.workflows_file)  # a bad file stops start-up, saying why
    runtime = ServiceRuntime(settings, outbox_table=models.outbox, inbox_table=models.inbox)
    assert runtime.db is not None and runtime.sink is not None
    onboarding = Onboarding(
        sink=runtime.sink,
        catalogue=catalogue,
        auto_start=settings.auto_start_onboarding,
    )
    invitations = Invitations(
        sink=runtime.sink,
        onboarding=onboarding,
        ttl=timedelta(hours=settings.invitation_ttl_hours),
        max_attempts=settings.sender_max_attempts,
        backoff_seconds=settings.sender_backoff_seconds,
        max_backoff_seconds=settings.sender_max_backoff_seconds,
    )
    sender = InvitationSender(runtime.db, invitations, mailer or SmtpMailer(settings), settings)
    sweeper = ExpirySweeper(runtime.db, invitations, settings)
    tenant_events = events.register(runtime, onboarding, invitations)
    runtime.add_background(sender.run)
    runtime.add_background(sweeper.run)

    app = runtime.create_app(
        title="Stellara onboarding-svc",
        description="Onboarding workflows and admin invitations.",
    )
    install_domain_errors(app, PROBLEMS)
    app.include_router(api.router)
    app.state.parts = OnboardingParts(
        db=runtime.db,
        onboarding=onboarding,
        invitations=invitations,
        sender=sender,
        tenant_unit=tenant_units(runtime.db),
    )
    app.state.tenant_events = tenant_events
    app.state.sweeper = sweeper
    return app
