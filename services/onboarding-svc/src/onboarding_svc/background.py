"""Background work: the invitation mail sender and the expiry sweeper.

Both run in every replica. Each claims rows with ``SELECT … FOR UPDATE SKIP
LOCKED`` inside its transaction, so two replicas never send the same mail at
the same time nor expire the same invitation twice; a state column
(``delivery_state``, ``status``) makes each effect happen once.

The sender keeps the row locked while it talks to the SMTP server (bounded by
``smtp_timeout_seconds``) and records the outcome in the same transaction:
``sent`` with an ``InvitationSent`` event, or another try later with backoff,
or ``failed`` after the last try. A mail server that is down loses nothing:
the invitation waits, visible as ``pending`` with its attempts and last error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from onboarding_svc import repository as repo
from onboarding_svc.invitations import Invitations, new_token
from onboarding_svc.mail import Mailer, accept_url, compose_invitation
from onboarding_svc.settings import Settings
from stellara_kit.db import Database

log = logging.getLogger(__name__)


class _Periodic:
    """Runs ``round()`` every ``interval`` seconds, or sooner when woken."""

    interval: float

    def __init__(self) -> None:
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def round(self) -> int:
        raise NotImplementedError

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s round failed; trying again later", type(self).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)


class InvitationSender(_Periodic):
    """Sends the mails of invitations whose delivery is due."""

    def __init__(
        self, db: Database, invitations: Invitations, mailer: Mailer, settings: Settings
    ) -> None:
        super().__init__()
        self.db = db
        self.invitations = invitations
        self.mailer = mailer
        self.settings = settings
        self.interval = settings.sender_interval_seconds

    async def round(self) -> int:
        """Send up to a batch of due mails, one transaction each; returns how many went out."""
        sent = 0
        for _ in range(self.settings.sender_batch_size):
            outcome = await self.send_next()
            if outcome is None:
                break
            sent += int(outcome)
        return sent

    async def send_next(self) -> bool | None:
        """Send the next due mail: True if it went out, False if not, None if none was due."""
        async with self.db.system_transaction() as session:
            invitation = await self.invitations.claim_next_delivery(session)
            if invitation is None:
                return None
            tenant = await repo.get_tenant(session, invitation.tenant_id)
            tenant_name = (tenant.name or tenant.slug if tenant else None) or "your organisation"
            token = new_token()
            message = compose_invitation(
                self.settings,
                to=invitation.email,
                tenant_name=tenant_name,
                role=invitation.role,
                link=accept_url(self.settings, token),
                expires_at=invitation.expires_at,
            )
            try:
                await self.mailer.send(message)
            except Exception as exc:  # any SMTP or network failure: try again later
                error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "invitation %s: sending failed (attempt %d): %s",
                    invitation.id,
                    invitation.delivery_attempts + 1,
                    error,
                )
                await self.invitations.delivery_failed(session, invitation, error)
                return False
            await self.invitations.delivered(session, invitation, token)
            log.info("invitation %s sent", invitation.id)
            return True


class ExpirySweeper(_Periodic):
    """Expires open invitations past their expiry and announces each once."""

    def __init__(self, db: Database, invitations: Invitations, settings: Settings) -> None:
        super().__init__()
        self.db = db
        self.invitations = invitations
        self.batch_size = settings.sweeper_batch_size
        self.interval = settings.sweeper_interval_seconds

    async def round(self) -> int:
        total = 0
        while True:
            async with self.db.system_transaction() as session:
                count = await self.invitations.expire_due(session, limit=self.batch_size)
            total += count
            if count < self.batch_size:
                return total
