"""Invitations: create, list, resend, revoke, accept by token, expire; mail delivery state.

Tokens are 32 random bytes (URL-safe text), made when the mail is about to
be sent and never stored: only their SHA-256 is kept, so a database reader
cannot accept anyone's invitation. The hash is committed before the mail
leaves, so a link works as soon as it arrives. Sending again (a retry or a
resend) makes a new token and the previous link stops working.

Who may accept: the link alone is not enough (a forwarded mail, a guessed or
leaked link). The accepting user's token must carry an ``email`` claim that
its identity provider has not marked unverified (``email_verified: false``
refuses; a token without ``email_verified`` counts as verified, as tokens from
providers that only issue verified addresses do), and that address must be
the invited one, compared case-insensitively over the whole address with
surrounding spaces ignored (no other rewriting: dots and ``+tags`` count).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onboarding_svc import repository as repo
from onboarding_svc.errors import (
    InvitationAlreadyOpen,
    InvitationClosed,
    InvitationEmailMismatch,
    InvitationEmailRequired,
    InvitationEmailUnverified,
    InvitationNotFound,
    InvitationTokenExpired,
    InvitationTokenRevoked,
    InvitationTokenUnknown,
    InvitationTokenUsed,
    InvitationUserIdUnsupported,
)
from onboarding_svc.models import DeliveryState, Invitation, InvitationStatus
from onboarding_svc.service import SYSTEM_ACTOR, Onboarding, utcnow
from stellara_contracts.events import (
    InvitationAccepted,
    InvitationExpired,
    InvitationSent,
    Role,
    TenantDeletedEvent,
)
from stellara_contracts.patterns import USER_ID_MAX_LENGTH, USER_ID_PATTERN, USER_ID_RULE
from stellara_kit.auth import Principal
from stellara_kit.outbox import EventSink
from stellara_kit.pagination import cursor_instant, cursor_uuid, decode_cursor, next_page

TOKEN_BYTES = 32
_USER_ID = re.compile(USER_ID_PATTERN)


def accepting_address(principal: Principal) -> str:
    """The verified email address ``principal`` may accept invitations for (a user whose id
    could not name a member is refused first: the membership would never be made)."""
    if len(principal.subject) > USER_ID_MAX_LENGTH or not _USER_ID.match(principal.subject):
        raise InvitationUserIdUnsupported(
            f"Your sign-in's user id cannot be a member's: a user id is {USER_ID_RULE}."
        )
    if principal.email is None or not principal.email.strip():
        raise InvitationEmailRequired(
            "Accepting an invitation needs a sign-in whose token carries your email address."
        )
    if principal.email_verified is False:
        raise InvitationEmailUnverified(
            "Your email address is not verified; verify it with your identity provider, "
            "then accept again."
        )
    return principal.email


def same_address(a: str, b: str) -> bool:
    """Whether two email addresses are the same for accepting (see the module docstring)."""
    return a.strip().casefold() == b.strip().casefold()


def new_token() -> str:
    """32 random bytes as URL-safe text."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class DeliveryClaim:
    """A mail a sender has taken on: what goes in it, and the token its link carries."""

    invitation_id: UUID
    tenant_id: UUID
    tenant_name: str
    email: str
    role: str
    expires_at: datetime
    attempt: int
    token: str


class Invitations:
    """Invitation logic; stateless apart from its configuration."""

    def __init__(
        self,
        *,
        sink: EventSink,
        onboarding: Onboarding,
        ttl: timedelta,
        max_attempts: int,
        backoff_seconds: float,
        max_backoff_seconds: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sink = sink
        self.onboarding = onboarding
        self.ttl = ttl
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.clock = clock

    # ------------------------------------------------------------------ management
    async def create(
        self, session: AsyncSession, tenant_id: UUID, *, email: str, role: Role, by: str
    ) -> Invitation:
        """A new invitation, queued for sending (delivery state ``pending``)."""
        await self.onboarding.require_tenant(session, tenant_id)
        open_one = await repo.find_open_invitation(session, tenant_id, email)
        if open_one is not None:
            raise InvitationAlreadyOpen(
                "This address already has an open invitation; resend or revoke it.",
                invitation_id=open_one.id,
            )
        now = self.clock()
        invitation = Invitation(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            email=email,
            role=str(role),
            status=InvitationStatus.PENDING,
            created_at=now,
            created_by=by,
            expires_at=now + self.ttl,
            delivery_state=DeliveryState.PENDING,
            delivery_attempts=0,
            next_delivery_at=now,
        )
        try:
            async with session.begin_nested():
                await repo.add(session, invitation)
        except IntegrityError as exc:  # a concurrent request invited the same address
            raise InvitationAlreadyOpen(
                "This address already has an open invitation; resend or revoke it."
            ) from exc
        return invitation

    async def get(self, session: AsyncSession, tenant_id: UUID, invitation_id: UUID) -> Invitation:
        invitation = await repo.get_invitation(session, tenant_id, invitation_id)
        if invitation is None:
            raise InvitationNotFound("No such invitation.")
        return invitation

    async def list(
        self,
        session: AsyncSession,
        tenant_id: UUID,
        *,
        limit: int,
        cursor: str | None = None,
        status: InvitationStatus | None = None,
    ) -> tuple[list[Invitation], str | None]:
        """A page of the tenant's invitations, oldest first, and the cursor of the next one."""
        await self.onboarding.require_known_tenant(session, tenant_id)
        after = None
        if cursor:
            created, invitation_id = decode_cursor(cursor, 2)
            after = (cursor_instant(created), cursor_uuid(invitation_id))
        rows = await repo.list_invitations(
            session, tenant_id, limit=limit + 1, after=after, status=status
        )
        return next_page(rows, limit, lambda i: (i.created_at.isoformat(), i.id))

    async def resend(
        self, session: AsyncSession, tenant_id: UUID, invitation_id: UUID, *, by: str
    ) -> Invitation:
        """Queue the mail again with a fresh expiry; the next send makes a new link."""
        await self.onboarding.require_tenant(session, tenant_id)
        invitation = await self._locked(session, tenant_id, invitation_id)
        self._require_open(invitation)
        now = self.clock()
        invitation.expires_at = now + self.ttl
        invitation.delivery_state = DeliveryState.PENDING
        invitation.delivery_attempts = 0
        invitation.next_delivery_at = now
        invitation.last_delivery_error = None
        await session.flush()
        return invitation

    async def revoke(
        self, session: AsyncSession, tenant_id: UUID, invitation_id: UUID, *, by: str
    ) -> Invitation:
        """Revoke an open invitation; revoking it again changes nothing."""
        invitation = await self._locked(session, tenant_id, invitation_id)
        if invitation.status == InvitationStatus.REVOKED:
            return invitation
        self._require_open(invitation)
        invitation.status = InvitationStatus.REVOKED
        invitation.revoked_at, invitation.revoked_by = self.clock(), by
        await session.flush()
        return invitation

    async def revoke_all_open(self, session: AsyncSession, tenant_id: UUID, *, by: str) -> int:
        return await repo.revoke_open_invitations(session, tenant_id, now=self.clock(), by=by)

    async def tenant_deleted(self, session: AsyncSession, event: TenantDeletedEvent) -> None:
        """The tenant is gone: its copy says so, its onboarding is cancelled
        (``Onboarding.apply_tenant_event``) and its open invitations are revoked."""
        await self.onboarding.apply_tenant_event(session, event)
        await self.revoke_all_open(session, event.data.tenant_id, by=SYSTEM_ACTOR)

    async def _locked(
        self, session: AsyncSession, tenant_id: UUID, invitation_id: UUID
    ) -> Invitation:
        invitation = await repo.get_invitation(session, tenant_id, invitation_id, lock="update")
        if invitation is None:
            raise InvitationNotFound("No such invitation.")
        return invitation

    def _require_open(self, invitation: Invitation) -> None:
        if invitation.status == InvitationStatus.PENDING and invitation.expires_at <= self.clock():
            raise InvitationClosed(
                "The invitation has expired; create a new one.", invitation_status="expired"
            )
        if invitation.status != InvitationStatus.PENDING:
            raise InvitationClosed(
                f"The invitation was {invitation.status}; create a new one.",
                invitation_status=invitation.status,
            )

    # ------------------------------------------------------------------ accepting
    async def tenant_of_token(self, session: AsyncSession, token: str) -> UUID:
        """Which tenant a token belongs to (run in a system transaction)."""
        tenant_id = await repo.tenant_of_token(session, hash_token(token))
        if tenant_id is None:
            raise InvitationTokenUnknown("No such invitation.")
        return tenant_id

    async def accept(
        self, session: AsyncSession, token: str, *, user_id: str, email: str
    ) -> Invitation:
        """Accept the invitation for ``user_id`` with the verified address ``email``; a refusal
        tells nothing of the tenant, and nothing of the invitation to someone it is not for."""
        invitation = await repo.get_invitation_by_token(session, hash_token(token), lock="update")
        if invitation is None:
            raise InvitationTokenUnknown("No such invitation.")
        if not same_address(email, invitation.email):
            raise InvitationEmailMismatch(
                "This invitation was sent to another email address than the one you signed in "
                "with; sign in with the invited address."
            )
        now = self.clock()
        if invitation.status == InvitationStatus.ACCEPTED:
            raise InvitationTokenUsed("This invitation was already accepted.")
        if invitation.status == InvitationStatus.REVOKED:
            raise InvitationTokenRevoked("This invitation was revoked.")
        if invitation.status == InvitationStatus.EXPIRED or invitation.expires_at <= now:
            raise InvitationTokenExpired("This invitation has expired; ask for a new one.")
        invitation.status = InvitationStatus.ACCEPTED
        invitation.accepted_at, invitation.accepted_by = now, user_id
        await session.flush()
        await self.sink.publish(
            session,
            InvitationAccepted(
                tenant_id=invitation.tenant_id,
                invitation_id=invitation.id,
                email=invitation.email,
                role=Role(invitation.role),
                user_id=user_id,
            ),
        )
        await self.onboarding.invitation_accepted(
            session, invitation.tenant_id, role=invitation.role, user_id=user_id
        )
        return invitation

    # ------------------------------------------------------------------ background work
    async def claim_delivery(
        self, session: AsyncSession, *, lease: timedelta
    ) -> DeliveryClaim | None:
        """Take the next due mail: make its token, keep the token's hash, and hold the
        invitation for ``lease`` so no other sender takes it meanwhile."""
        now = self.clock()
        invitation = await repo.claim_due_delivery(session, now)
        if invitation is None:
            return None
        tenant = await repo.get_tenant(session, invitation.tenant_id)
        token = new_token()
        invitation.token_hash = hash_token(token)
        invitation.next_delivery_at = now + lease
        await session.flush()
        return DeliveryClaim(
            invitation_id=invitation.id,
            tenant_id=invitation.tenant_id,
            tenant_name=(tenant.name or tenant.slug if tenant else None) or "your organisation",
            email=invitation.email,
            role=invitation.role,
            expires_at=invitation.expires_at,
            attempt=invitation.delivery_attempts + 1,
            token=token,
        )

    async def record_delivery(
        self, session: AsyncSession, claim: DeliveryClaim, *, error: str | None
    ) -> bool:
        """Record how sending went: ``sent`` (and announce it), or another try later with
        backoff, or ``failed`` after the last try. False when a resend superseded this mail."""
        invitation = await repo.get_invitation(
            session, claim.tenant_id, claim.invitation_id, lock="update"
        )
        if invitation is None or invitation.token_hash != hash_token(claim.token):
            return False
        now = self.clock()
        invitation.delivery_attempts += 1
        still_open = invitation.status == InvitationStatus.PENDING
        if error is None:
            invitation.delivery_state = DeliveryState.SENT
            invitation.sent_at = now
            invitation.next_delivery_at = None
            invitation.last_delivery_error = None
            # revoked or expired while the mail was on its way: it went out (and its link no
            # longer works), but nothing is announced for a closed invitation
            if still_open:
                await self.sink.publish(
                    session,
                    InvitationSent(
                        tenant_id=invitation.tenant_id,
                        invitation_id=invitation.id,
                        email=invitation.email,
                        role=Role(invitation.role),
                        expires_at=invitation.expires_at,
                    ),
                )
        elif not still_open:
            invitation.next_delivery_at = None  # no further tries for a closed invitation
            invitation.last_delivery_error = error[:1000]
        elif invitation.delivery_attempts >= self.max_attempts:
            invitation.delivery_state = DeliveryState.FAILED
            invitation.next_delivery_at = None
            invitation.last_delivery_error = error[:1000]
        else:
            delay = min(
                self.backoff_seconds * 2 ** (invitation.delivery_attempts - 1),
                self.max_backoff_seconds,
            )
            invitation.next_delivery_at = now + timedelta(seconds=delay)
            invitation.last_delivery_error = error[:1000]
        await session.flush()
        return True

    async def expire_due(self, session: AsyncSession, *, limit: int) -> int:
        """Mark open invitations past expiry as expired and announce each once."""
        now = self.clock()
        expired = await repo.claim_expired(session, now, limit=limit)
        for invitation in expired:
            invitation.status = InvitationStatus.EXPIRED
            invitation.expired_at = now
            invitation.next_delivery_at = None
            await self.sink.publish(
                session,
                InvitationExpired(
                    tenant_id=invitation.tenant_id,
                    invitation_id=invitation.id,
                    email=invitation.email,
                ),
            )
        await session.flush()
        return len(expired)
