"""What routes share: the service's parts and the unit of work on one tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Path, Request

from onboarding_svc.background import InvitationSender
from onboarding_svc.invitations import Invitations
from onboarding_svc.service import Onboarding
from stellara_kit.db import Database
from stellara_kit.tenant_unit import TenantUnits, tenant_id_only


@dataclass(frozen=True)
class OnboardingParts:
    """The parts of the service a request needs, built once in ``create_app``."""

    db: Database
    onboarding: Onboarding
    invitations: Invitations
    sender: InvitationSender
    #: ``async with parts.tenant_unit(tenant_id, principal, access=…) as (session, _)``: one
    #: transaction on the tenant after authorizing the caller; the services look the tenant
    #: up themselves (an unknown one is a 404, a deleted one a 409)
    tenant_unit: TenantUnits[UUID]


def tenant_units(db: Database) -> TenantUnits[UUID]:
    return TenantUnits(db, by_id=tenant_id_only)


def _parts(request: Request) -> OnboardingParts:
    parts: OnboardingParts = request.app.state.parts
    return parts


#: ``parts: Parts`` in a route signature
Parts = Annotated[OnboardingParts, Depends(_parts)]
TenantId = Annotated[UUID, Path(description="The tenant's id.")]
InvitationId = Annotated[UUID, Path(description="The invitation's id.")]
