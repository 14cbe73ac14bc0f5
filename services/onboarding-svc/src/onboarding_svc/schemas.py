"""HTTP request and response models of onboarding-svc (not events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from onboarding_svc.definitions import STEP_KEY_PATTERN
from onboarding_svc.models import DeliveryState, Invitation, InvitationStatus, Step, StepStatus
from onboarding_svc.service import WorkflowView
from stellara_contracts.patterns import EMAIL_MAX_LENGTH, EMAIL_PATTERN
from stellara_kit.pagination import Page

_TENANT = "5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11"
_WORKFLOW = "a9b8c7d6-e5f4-4a3b-8c2d-1e0f9a8b7c6d"
_INVITATION = "c2a1b0d9-8e7f-4a6b-9c5d-4e3f2a1b0c9d"
_USER = "8d7f5a9c-2b1e-4c3d-9e8f-7a6b5c4d3e2f"


class StepOut(BaseModel):
    """One step of a tenant's onboarding."""

    key: str = Field(examples=["configure_tenant"])
    title: str = Field(examples=["Configure the tenant"])
    required: bool = Field(examples=[True])
    depends_on: list[str] = Field(examples=[["invite_admin"]])
    completes: Literal["manual", "event"] = Field(
        description="`manual`: through complete-step; `event`: by itself on an event.",
        examples=["manual"],
    )
    status: StepStatus = Field(examples=["in_progress"])
    started_at: datetime | None = Field(examples=["2026-12-01T10:00:00Z"])
    completed_at: datetime | None = Field(examples=[None])
    completed_by: str | None = Field(examples=[None])
    payload: dict[str, Any] | None = Field(examples=[None])

    @classmethod
    def of(cls, step: Step) -> StepOut:
        return cls(
            key=step.key,
            title=step.title,
            required=step.required,
            depends_on=list(step.depends_on),
            completes="event" if step.completion.get("kind") == "event" else "manual",
            status=StepStatus(step.status),
            started_at=step.started_at,
            completed_at=step.completed_at,
            completed_by=step.completed_by,
            payload=step.payload,
        )


class OnboardingStatus(BaseModel):
    """Where a tenant's onboarding stands."""

    tenant_id: UUID = Field(examples=[_TENANT])
    workflow_id: UUID = Field(examples=[_WORKFLOW])
    plan: str | None = Field(examples=["starter"])
    status: Literal["running", "completed", "cancelled"] = Field(examples=["running"])
    percent_complete: int = Field(
        ge=0, le=100, description="Share of the required steps that are done.", examples=[33]
    )
    next_steps: list[str] = Field(
        description="Keys of the steps that can be worked on now.", examples=[["configure_tenant"]]
    )
    started_at: datetime = Field(examples=["2026-12-01T10:00:00Z"])
    started_by: str = Field(examples=["system"])
    completed_at: datetime | None = Field(examples=[None])
    cancelled_at: datetime | None = Field(examples=[None])
    steps: list[StepOut]

    @classmethod
    def of(cls, view: WorkflowView) -> OnboardingStatus:
        workflow = view.workflow
        return cls(
            tenant_id=workflow.tenant_id,
            workflow_id=workflow.id,
            plan=workflow.plan,
            status=workflow.status,
            percent_complete=view.percent_complete,
            next_steps=[s.key for s in view.next_steps],
            started_at=workflow.started_at,
            started_by=workflow.started_by,
            completed_at=workflow.completed_at,
            cancelled_at=workflow.cancelled_at,
            steps=[StepOut.of(s) for s in view.steps],
        )


class CompleteStep(BaseModel):
    """Complete a manual step (or skip an optional one)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"step_key": "configure_tenant", "payload": {"timezone": "Europe/Paris"}},
                {"step_key": "verify_domain", "skip": True},
            ]
        }
    )

    step_key: str = Field(
        validation_alias=AliasChoices("step_key", "step"),
        min_length=1,
        max_length=63,
        pattern=STEP_KEY_PATTERN,
        description="The step's key (one of the tenant's workflow, see the onboarding status).",
    )
    payload: dict[str, Any] | None = Field(
        default=None, description="Anything worth keeping with the step (shown in the status)."
    )
    skip: bool = Field(default=False, description="Skip an optional step instead.")

    @field_validator("payload")
    @classmethod
    def _bounded_payload(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(str(value)) > 16_000:
            raise ValueError("payload is too large (at most ~16 kB)")
        return value


class InvitationIn(BaseModel):
    """Invite someone to the tenant by email."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "ada@acme.example", "role": "tenant_admin"}]}
    )

    email: str = Field(
        max_length=EMAIL_MAX_LENGTH, pattern=EMAIL_PATTERN, examples=["ada@acme.example"]
    )
    role: Literal["tenant_admin", "user"] = Field(
        default="user", description="The role the invited person gets.", examples=["tenant_admin"]
    )

    @field_validator("email", mode="before")
    @classmethod
    def _trim(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value


class InvitationOut(BaseModel):
    """An invitation and the state of its mail."""

    id: UUID = Field(examples=[_INVITATION])
    tenant_id: UUID = Field(examples=[_TENANT])
    email: str = Field(examples=["ada@acme.example"])
    role: str = Field(examples=["tenant_admin"])
    status: InvitationStatus = Field(examples=["pending"])
    created_at: datetime = Field(examples=["2026-12-01T10:00:00Z"])
    created_by: str = Field(examples=[_USER])
    expires_at: datetime = Field(examples=["2026-12-08T10:00:00Z"])
    delivery_state: DeliveryState = Field(
        description="`pending`: queued or being retried; `sent`; `failed`: gave up (resend).",
        examples=["sent"],
    )
    delivery_attempts: int = Field(examples=[1])
    next_delivery_at: datetime | None = Field(examples=[None])
    last_delivery_error: str | None = Field(examples=[None])
    sent_at: datetime | None = Field(examples=["2026-12-01T10:00:01Z"])
    accepted_at: datetime | None = Field(examples=[None])
    accepted_by: str | None = Field(examples=[None])
    revoked_at: datetime | None = Field(examples=[None])
    expired_at: datetime | None = Field(examples=[None])

    @classmethod
    def of(cls, invitation: Invitation) -> InvitationOut:
        return cls(
            id=invitation.id,
            tenant_id=invitation.tenant_id,
            email=invitation.email,
            role=invitation.role,
            status=InvitationStatus(invitation.status),
            created_at=invitation.created_at,
            created_by=invitation.created_by,
            expires_at=invitation.expires_at,
            delivery_state=DeliveryState(invitation.delivery_state),
            delivery_attempts=invitation.delivery_attempts,
            next_delivery_at=invitation.next_delivery_at,
            last_delivery_error=invitation.last_delivery_error,
            sent_at=invitation.sent_at,
            accepted_at=invitation.accepted_at,
            accepted_by=invitation.accepted_by,
            revoked_at=invitation.revoked_at,
            expired_at=invitation.expired_at,
        )


class InvitationPage(Page[InvitationOut]):
    """A page of invitations, oldest first."""

    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page.", examples=[None]
    )


class AcceptedInvitation(BaseModel):
    """The invitation was accepted: the user joins the tenant with the role."""

    invitation_id: UUID = Field(examples=[_INVITATION])
    tenant_id: UUID = Field(examples=[_TENANT])
    email: str = Field(examples=["ada@acme.example"])
    role: str = Field(examples=["tenant_admin"])
    user_id: str = Field(examples=[_USER])
    accepted_at: datetime = Field(examples=["2026-12-02T09:00:00Z"])
