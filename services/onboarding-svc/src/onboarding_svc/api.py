"""onboarding-svc HTTP routes (thin: parse, authorize, open the transaction, call the service).

The paths are the ones the gateway exposes. Roles: ``platform_admin`` may do
everything; a ``tenant_admin`` runs its own tenant's onboarding and
invitations; a ``user`` reads its own tenant's onboarding status. Another
tenant's objects answer 404. Accepting an invitation needs any authenticated
principal: the person accepting.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, status

from onboarding_svc import errors
from onboarding_svc.deps import InvitationId, OnboardingParts, Parts, TenantId
from onboarding_svc.invitations import accepting_address
from onboarding_svc.models import InvitationStatus
from onboarding_svc.schemas import (
    AcceptedInvitation,
    CompleteStep,
    InvitationIn,
    InvitationOut,
    InvitationPage,
    OnboardingStatus,
)
from stellara_contracts.events import Role
from stellara_kit.auth import CurrentPrincipal, Principal
from stellara_kit.problems import problem_responses

router = APIRouter()


# ------------------------------------------------------------------ onboarding
@router.post(
    "/tenants/{tenant_id}/onboard",
    tags=["onboarding"],
    summary="Start a tenant's onboarding",
    status_code=status.HTTP_201_CREATED,
    response_model=OnboardingStatus,
    responses=problem_responses(401, 403, 404, 409),
)
async def start_onboarding(
    tenant_id: TenantId, principal: CurrentPrincipal, parts: Parts
) -> OnboardingStatus:
    """Start the onboarding workflow of the tenant's plan (409 if it is running or finished).
    Onboarding also starts by itself when the tenant is created."""
    async with parts.tenant_unit(tenant_id, principal, access="admin") as (session, _):
        view = await parts.onboarding.start(session, tenant_id, started_by=principal.subject)
        return OnboardingStatus.of(view)


@router.get(
    "/tenants/{tenant_id}/onboarding-status",
    tags=["onboarding"],
    summary="A tenant's onboarding progress",
    response_model=OnboardingStatus,
    responses=problem_responses(401, 404, 409),
)
async def onboarding_status(
    tenant_id: TenantId, principal: CurrentPrincipal, parts: Parts
) -> OnboardingStatus:
    """Every step with its status, timestamps and who completed it; percent complete; the steps
    that can be worked on next."""
    async with parts.tenant_unit(tenant_id, principal, access="read") as (session, _):
        return OnboardingStatus.of(await parts.onboarding.status(session, tenant_id))


@router.post(
    "/tenants/{tenant_id}/onboard/complete-step",
    tags=["onboarding"],
    summary="Complete an onboarding step",
    response_model=OnboardingStatus,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def complete_step(
    tenant_id: TenantId, body: CompleteStep, principal: CurrentPrincipal, parts: Parts
) -> OnboardingStatus:
    """Complete a manual step (or skip an optional one with `skip: true`). Unknown step: 422;
    dependencies not done: 409 naming them; repeating a completed step changes nothing."""
    async with parts.tenant_unit(tenant_id, principal, access="admin") as (session, _):
        view = await parts.onboarding.complete_step(
            session,
            tenant_id,
            body.step_key,
            by=principal.subject,
            payload=body.payload,
            skip=body.skip,
        )
        return OnboardingStatus.of(view)


# ------------------------------------------------------------------ invitations
@router.post(
    "/tenants/{tenant_id}/invitations",
    tags=["invitations"],
    summary="Invite someone by email",
    status_code=status.HTTP_201_CREATED,
    response_model=InvitationOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_invitation(
    tenant_id: TenantId, body: InvitationIn, principal: CurrentPrincipal, parts: Parts
) -> InvitationOut:
    """Create an invitation; its mail with the accept link goes out in the background
    (see `delivery_state`)."""
    async with parts.tenant_unit(tenant_id, principal, access="admin") as (session, _):
        invitation = await parts.invitations.create(
            session, tenant_id, email=body.email, role=Role(body.role), by=principal.subject
        )
        result = InvitationOut.of(invitation)
    parts.sender.wake()
    return result


@router.get(
    "/tenants/{tenant_id}/invitations",
    tags=["invitations"],
    summary="List a tenant's invitations",
    response_model=InvitationPage,
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def list_invitations(
    tenant_id: TenantId,
    principal: CurrentPrincipal,
    parts: Parts,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="From `next_cursor`.")] = None,
    status_filter: Annotated[
        InvitationStatus | None, Query(alias="status", description="Only this status.")
    ] = None,
) -> InvitationPage:
    """The tenant's invitations, oldest first, with the delivery state of each mail."""
    async with parts.tenant_unit(tenant_id, principal, access="admin") as (session, _):
        rows, next_cursor = await parts.invitations.list(
            session, tenant_id, limit=limit, cursor=cursor, status=status_filter
        )
        return InvitationPage(items=[InvitationOut.of(i) for i in rows], next_cursor=next_cursor)


@router.get(
    "/tenants/{tenant_id}/invitations/{invitation_id}",
    tags=["invitations"],
    summary="One invitation",
    response_model=InvitationOut,
    responses=problem_responses(401, 403, 404),
)
async def get_invitation(
    tenant_id: TenantId,
    invitation_id: InvitationId,
    principal: CurrentPrincipal,
    parts: Parts,
) -> InvitationOut:
    """An invitation with the delivery state of its mail."""
    async with parts.tenant_unit(tenant_id, principal, access="admin") as (session, _):
        return InvitationOut.of(await parts.invitations.get(session, tenant_id, invitation_id))


@router.post(
    "/tenants/{tenant_id}/invitations/{invitation_id}/resend",
    tags=["invitations"],
    summary="Send an invitation again",
    response_model=InvitationOut,
    responses=problem_responses(401, 403, 404, 409),
)
async def resend_invitation(
    tenant_id: TenantId,
    invitation_id: InvitationId,
    principal: CurrentPrincipal,
    parts: Parts,
) -> InvitationOut:
    """Queue the mail again with a fresh expiry and a new link (the previous link stops working
    once the new mail is sent). Accepted, revoked or expired invitations: 409."""
    async with parts.tenant_unit(tenant_id, principal, access="admin") as (session, _):
        invitation = await parts.invitations.resend(
            session, tenant_id, invitation_id, by=principal.subject
        )
        result = InvitationOut.of(invitation)
    parts.sender.wake()
    return result


async def _revoke(
    tenant_id: UUID, invitation_id: UUID, principal: Principal, parts: OnboardingParts
) -> InvitationOut:
    async with parts.tenant_unit(tenant_id, principal, access="admin") as (session, _):
        invitation = await parts.invitations.revoke(
            session, tenant_id, invitation_id, by=principal.subject
        )
        return InvitationOut.of(invitation)


@router.delete(
    "/tenants/{tenant_id}/invitations/{invitation_id}",
    tags=["invitations"],
    summary="Revoke an invitation",
    response_model=InvitationOut,
    responses=problem_responses(401, 403, 404, 409),
)
async def revoke_invitation(
    tenant_id: TenantId,
    invitation_id: InvitationId,
    principal: CurrentPrincipal,
    parts: Parts,
) -> InvitationOut:
    """Revoke an open invitation: its link stops working. Revoking again changes nothing;
    an accepted or expired invitation: 409."""
    return await _revoke(tenant_id, invitation_id, principal, parts)


@router.post(
    "/tenants/{tenant_id}/invitations/{invitation_id}/revoke",
    tags=["invitations"],
    summary="Revoke an invitation (POST form)",
    response_model=InvitationOut,
    responses=problem_responses(401, 403, 404, 409),
)
async def revoke_invitation_post(
    tenant_id: TenantId,
    invitation_id: InvitationId,
    principal: CurrentPrincipal,
    parts: Parts,
) -> InvitationOut:
    """The same as `DELETE /tenants/{id}/invitations/{invitation_id}`."""
    return await _revoke(tenant_id, invitation_id, principal, parts)


@router.post(
    "/invitations/{token}/accept",
    tags=["invitations"],
    summary="Accept an invitation",
    response_model=AcceptedInvitation,
    responses=problem_responses(401, 403, 404, 409, 410),
)
async def accept_invitation(
    token: Annotated[str, Path(description="The token from the invitation email.")],
    principal: CurrentPrincipal,
    parts: Parts,
) -> AcceptedInvitation:
    """Accept as the calling user, whose token must carry the invited address as a verified
    email (case-insensitive). No email, an unverified one or another address: 403; unknown: 404;
    revoked or already accepted: 409; expired: 410 — refusals never name the tenant or the
    invited address."""
    email = accepting_address(principal)
    if not 16 <= len(token) <= 128:
        raise errors.InvitationTokenUnknown("No such invitation.")
    # which tenant the token belongs to is the one cross-tenant question; the rest runs under RLS
    async with parts.db.system_transaction() as session:
        tenant_id = await parts.invitations.tenant_of_token(session, token)
    async with parts.db.transaction(tenant_id) as session:
        invitation = await parts.invitations.accept(
            session, token, user_id=principal.subject, email=email
        )
        assert invitation.accepted_at is not None and invitation.accepted_by is not None
        return AcceptedInvitation(
            invitation_id=invitation.id,
            tenant_id=invitation.tenant_id,
            email=invitation.email,
            role=invitation.role,
            user_id=invitation.accepted_by,
            accepted_at=invitation.accepted_at,
        )
