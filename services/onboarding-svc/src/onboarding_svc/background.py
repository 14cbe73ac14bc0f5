"""Background work: the invitation mail sender and the expiry sweeper.

Both run in every replica. Each claims rows with ``SELECT … FOR UPDATE SKIP
LOCKED``, so two replicas never send the same mail at the same time nor expire
the same invitation twice; a state column (``delivery_state``, ``status``)
makes each effect happen once.

The sender claims one mail in a short transaction: it makes the token, commits
its hash and moves ``next_delivery_at`` past the time the send may take (a
lease). It then talks to the SMTP server outside any transaction, with a
deadline shorter than the lease, and records the outcome in a second
transaction: ``sent`` with an ``InvitationSent`` event, or another try later
with backoff, or ``failed`` after the last try. A mail server that is down
loses nothing: the invitation waits, visible as ``pending`` with its attempts
and last error; a sender that dies mid-send leaves the mail to be taken again
when the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from onboarding_svc.invitations import Invitations
from onboarding_svc.mail import Mailer, accept_url, compose_invitation
from onboarding_svc.settings import Settings
from stellara_kit.db import Database

log = logging.getLogger(__name__)


def _being_cancelled() -> bool:
    """Whether this task was asked to stop, even if a library turned the cancellation
    into an ordinary error on the way up."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


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
                if _being_cancelled():
                    raise asyncio.CancelledError from None
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
        # a send is cut off well before its claim runs out, so no other sender can take
        # the same mail while it is still on its way
        self.send_deadline = 2 * settings.smtp_timeout_seconds
        self.lease = timedelta(seconds=2 * self.send_deadline + 10)

    async def round(self) -> int:
        """Send up to a batch of due mails; returns how many went out."""
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
            claim = await self.invitations.claim_delivery(session, lease=self.lease)
        if claim is None:
            return None
        message = compose_invitation(
            self.settings,
            to=claim.email,
            tenant_name=claim.tenant_name,
            role=claim.role,
            link=accept_url(self.settings, claim.token),
            expires_at=claim.expires_at,
            sent_at=self.invitations.clock(),
        )
        error: str | None = None
        try:
            async with asyncio.timeout(self.send_deadline):
                await self.mailer.send(message)
        except Exception as exc:  # any SMTP or network failure: try again later
            if _being_cancelled():
                raise asyncio.CancelledError from exc
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning(
                "invitation %s: sending failed (attempt %d): %s",
                claim.invitation_id,
                claim.attempt,
                error,
            )
        async with self.db.transaction(claim.tenant_id) as session:
            await self.invitations.record_delivery(session, claim, error=error)
        if error is None:
            log.info("invitation %s sent", claim.invitation_id)
        return error is None


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
