"""Onboarding workflows: start, progress, completion, cancellation; the copy of tenants.

Plain code on the caller's session: it never commits. Every change to a
workflow locks the workflow row first, so concurrent requests and events see
each other's effects and ``OnboardingCompleted`` is added exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from onboarding_svc import repository as repo
from onboarding_svc.definitions import (
    Completion,
    InvitationAcceptedCompletion,
    ManualCompletion,
    WorkflowCatalogue,
)
from onboarding_svc.errors import (
    OnboardingAlreadyStarted,
    OnboardingNotRunning,
    OnboardingNotStarted,
    StepBlocked,
    StepCompletesAutomatically,
    StepNotSkippable,
    TenantGone,
    TenantUnknown,
    UnknownStep,
)
from onboarding_svc.models import Step, StepStatus, Tenant, Workflow, WorkflowStatus
from stellara_contracts import CloudEvent
from stellara_contracts.events import (
    OnboardingCompleted,
    OnboardingStarted,
    OnboardingStepCompleted,
    TenantActivated,
    TenantCreated,
    TenantDeleted,
    TenantPlanChanged,
    TenantStatus,
    TenantSuspended,
    TenantUpdated,
)
from stellara_kit.outbox import EventSink

FINISHED_STEP = frozenset({StepStatus.DONE, StepStatus.SKIPPED})
SYSTEM_ACTOR = "system"


def utcnow() -> datetime:
    return datetime.now(UTC)


def completion_of(step: Step) -> Completion:
    if step.completion.get("kind") == "event":
        return InvitationAcceptedCompletion.model_validate(step.completion)
    return ManualCompletion.model_validate(step.completion)


@dataclass(frozen=True)
class WorkflowView:
    """A workflow with its steps, and what follows from them."""

    workflow: Workflow
    steps: list[Step]

    @property
    def percent_complete(self) -> int:
        if self.workflow.status == WorkflowStatus.COMPLETED:
            return 100
        required = [s for s in self.steps if s.required]
        done = sum(1 for s in required if s.status == StepStatus.DONE)
        return (100 * done) // len(required) if required else 100

    @property
    def next_steps(self) -> list[Step]:
        """Steps that can be worked on now: not finished, every dependency finished."""
        if self.workflow.status != WorkflowStatus.RUNNING:
            return []
        return [
            s for s in self.steps if s.status not in FINISHED_STEP and not blockers(s, self.steps)
        ]


def blockers(step: Step, steps: list[Step]) -> list[str]:
    """The dependencies of ``step`` that are neither done nor skipped."""
    status = {s.key: s.status for s in steps}
    return [key for key in step.depends_on if status.get(key) not in FINISHED_STEP]


class Onboarding:
    """Workflow logic; stateless apart from its configuration."""

    def __init__(
        self,
        *,
        sink: EventSink,
        catalogue: WorkflowCatalogue,
        auto_start: bool = True,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sink = sink
        self.catalogue = catalogue
        self.auto_start = auto_start
        self.clock = clock

    # ------------------------------------------------------------------ tenants
    async def apply_tenant_event(self, session: AsyncSession, event: CloudEvent) -> None:
        """Keep the copy of the tenant current; start or cancel onboarding on create/delete."""
        data = event.data
        tenant_id: UUID = data.tenant_id
        tenant = await repo.get_tenant(session, tenant_id, lock="update")
        if isinstance(data, TenantCreated):
            if tenant is None:
                tenant = Tenant(
                    tenant_id=tenant_id,
                    slug=data.slug,
                    name=data.name,
                    plan=data.plan,
                    status=str(data.status),
                )
                await repo.add(session, tenant)
            elif tenant.status != TenantStatus.DELETED:
                tenant.slug, tenant.name, tenant.plan = data.slug, data.name, data.plan
            if (
                self.auto_start
                # a tenant created active (the default tenant) has nothing to onboard
                and data.status == TenantStatus.PENDING
                and tenant.status != TenantStatus.DELETED
                and await repo.get_workflow(session, tenant_id) is None
            ):
                await self._start(session, tenant, started_by=SYSTEM_ACTOR)
            return
        if tenant is None:
            # an event for a tenant whose creation this service never saw: remember what it says
            tenant = Tenant(tenant_id=tenant_id, status=str(TenantStatus.PENDING))
            await repo.add(session, tenant)
        if isinstance(data, TenantDeleted):
            tenant.status = str(TenantStatus.DELETED)
            tenant.slug = data.slug
            await self.cancel(session, tenant_id)
        elif tenant.status == TenantStatus.DELETED:
            return
        elif isinstance(data, TenantPlanChanged):
            tenant.plan = data.new_plan
        elif isinstance(data, TenantActivated):
            tenant.status = str(TenantStatus.ACTIVE)
        elif isinstance(data, TenantSuspended):
            tenant.status = str(TenantStatus.SUSPENDED)
        elif isinstance(data, TenantUpdated) and isinstance(data.changes.get("name"), str):
            tenant.name = data.changes["name"]
        await session.flush()

    async def require_known_tenant(self, session: AsyncSession, tenant_id: UUID) -> Tenant:
        """The tenant, deleted or not."""
        tenant = await repo.get_tenant(session, tenant_id)
        if tenant is None:
            raise TenantUnknown("No such tenant.")
        return tenant

    async def require_tenant(self, session: AsyncSession, tenant_id: UUID) -> Tenant:
        """The tenant, known and not deleted."""
        tenant = await self.require_known_tenant(session, tenant_id)
        if tenant.status == TenantStatus.DELETED:
            raise TenantGone("The tenant was deleted.")
        return tenant

    # ------------------------------------------------------------------ workflow lifecycle
    async def start(
        self, session: AsyncSession, tenant_id: UUID, *, started_by: str
    ) -> WorkflowView:
        """Start the tenant's onboarding with its plan's workflow."""
        tenant = await repo.get_tenant(session, tenant_id, lock="update")
        if tenant is None:
            raise TenantUnknown("No such tenant.")
        if tenant.status == TenantStatus.DELETED:
            raise TenantGone("The tenant was deleted; its onboarding cannot start.")
        existing = await repo.get_workflow(session, tenant_id)
        if existing is not None:
            raise OnboardingAlreadyStarted(
                f"The tenant's onboarding is already {existing.status}.",
                workflow_id=existing.id,
                workflow_status=existing.status,
            )
        return await self._start(session, tenant, started_by=started_by)

    async def _start(
        self, session: AsyncSession, tenant: Tenant, *, started_by: str
    ) -> WorkflowView:
        definition = self.catalogue.for_plan(tenant.plan)
        now = self.clock()
        workflow = Workflow(
            id=uuid.uuid4(),
            tenant_id=tenant.tenant_id,
            plan=tenant.plan,
            status=WorkflowStatus.RUNNING,
            started_by=started_by,
            started_at=now,
        )
        await repo.add(session, workflow)
        steps = [
            Step(
                workflow_id=workflow.id,
                key=step.key,
                tenant_id=tenant.tenant_id,
                position=position,
                title=step.title,
                required=step.required,
                depends_on=list(step.depends_on),
                completion=step.completion.model_dump(mode="json"),
                status=StepStatus.PENDING,
            )
            for position, step in enumerate(definition.steps)
        ]
        await repo.add(session, *steps)
        await self.sink.publish(
            session,
            OnboardingStarted(
                tenant_id=tenant.tenant_id,
                workflow_id=workflow.id,
                plan=tenant.plan or "",
                steps=definition.keys,
            ),
        )
        view = WorkflowView(workflow, steps)
        await self._advance(session, view)
        return view

    async def status(self, session: AsyncSession, tenant_id: UUID) -> WorkflowView:
        workflow = await repo.get_workflow(session, tenant_id)
        if workflow is None:
            await self.require_tenant(session, tenant_id)
            raise OnboardingNotStarted("The tenant's onboarding has not started.")
        return WorkflowView(workflow, await repo.list_steps(session, workflow.id))

    async def _locked(self, session: AsyncSession, tenant_id: UUID) -> WorkflowView | None:
        workflow = await repo.get_workflow(session, tenant_id, lock="update")
        if workflow is None:
            return None
        return WorkflowView(workflow, await repo.list_steps(session, workflow.id))

    async def cancel(self, session: AsyncSession, tenant_id: UUID) -> None:
        """Cancel a running onboarding (the tenant was deleted); finished ones stay as they are."""
        view = await self._locked(session, tenant_id)
        if view is None or view.workflow.status != WorkflowStatus.RUNNING:
            return
        view.workflow.status = WorkflowStatus.CANCELLED
        view.workflow.cancelled_at = self.clock()
        await session.flush()

    # ------------------------------------------------------------------ steps
    async def complete_step(
        self,
        session: AsyncSession,
        tenant_id: UUID,
        step_key: str,
        *,
        by: str,
        payload: dict[str, Any] | None = None,
        skip: bool = False,
    ) -> WorkflowView:
        """Complete (or skip, if optional) a manual step; repeating it changes nothing."""
        view = await self._locked(session, tenant_id)
        if view is None:
            await self.require_tenant(session, tenant_id)
            raise OnboardingNotStarted("The tenant's onboarding has not started.")
        step = next((s for s in view.steps if s.key == step_key), None)
        if step is None:
            raise UnknownStep(
                f"The workflow has no step {step_key!r}.",
                step_key=step_key,
                steps=[s.key for s in view.steps],
            )
        if view.workflow.status == WorkflowStatus.CANCELLED:
            raise OnboardingNotRunning("The tenant's onboarding was cancelled.")
        if step.status == StepStatus.DONE or (skip and step.status == StepStatus.SKIPPED):
            return view
        if view.workflow.status != WorkflowStatus.RUNNING:
            raise OnboardingNotRunning(
                f"The tenant's onboarding is {view.workflow.status}; step {step_key!r} can no "
                "longer change.",
                step_key=step_key,
            )
        if skip:
            if step.required:
                raise StepNotSkippable(
                    f"Step {step_key!r} is required; only optional steps can be skipped.",
                    step_key=step_key,
                )
            step.status = StepStatus.SKIPPED
            step.completed_at, step.completed_by, step.payload = self.clock(), by, payload
            await self._advance(session, view)
            return view
        completion = completion_of(step)
        if isinstance(completion, InvitationAcceptedCompletion):
            raise StepCompletesAutomatically(
                f"Step {step_key!r} completes by itself when an invitation"
                + (f" with role {completion.role}" if completion.role else "")
                + " is accepted.",
                step_key=step_key,
            )
        missing = blockers(step, view.steps)
        if missing:
            raise StepBlocked(
                f"Step {step_key!r} waits for {', '.join(missing)}.",
                step_key=step_key,
                waiting_for=missing,
            )
        await self._mark_done(session, view, step, by=by, payload=payload)
        await self._advance(session, view)
        return view

    async def invitation_accepted(
        self, session: AsyncSession, tenant_id: UUID, *, role: str, user_id: str
    ) -> None:
        """Complete the steps that wait for an accepted invitation with this role."""
        view = await self._locked(session, tenant_id)
        if view is None or view.workflow.status != WorkflowStatus.RUNNING:
            return
        changed = False
        for step in view.steps:
            completion = completion_of(step)
            if step.status in FINISHED_STEP or not isinstance(
                completion, InvitationAcceptedCompletion
            ):
                continue
            if not completion.matches(role):
                continue
            if blockers(step, view.steps):
                if step.satisfied_at is None:
                    step.satisfied_at, step.satisfied_by = self.clock(), user_id
                    changed = True
                continue
            await self._mark_done(session, view, step, by=user_id, payload=None)
            changed = True
        if changed:
            await self._advance(session, view)

    async def _mark_done(
        self,
        session: AsyncSession,
        view: WorkflowView,
        step: Step,
        *,
        by: str,
        payload: dict[str, Any] | None,
    ) -> None:
        now = self.clock()
        step.status = StepStatus.DONE
        step.started_at = step.started_at or now
        step.completed_at, step.completed_by = now, by
        if payload is not None:
            step.payload = payload
        await self.sink.publish(
            session,
            OnboardingStepCompleted(
                tenant_id=view.workflow.tenant_id,
                workflow_id=view.workflow.id,
                step_key=step.key,
                completed_by=by,
                percent_complete=view.percent_complete,
            ),
        )

    async def _advance(self, session: AsyncSession, view: WorkflowView) -> None:
        """Start the steps whose dependencies are finished, complete the ones already
        satisfied by an earlier event, and complete the workflow when every required step is done."""
        progressed = True
        while progressed:
            progressed = False
            for step in view.steps:
                if step.status in FINISHED_STEP or blockers(step, view.steps):
                    continue
                if step.status == StepStatus.PENDING:
                    step.status = StepStatus.IN_PROGRESS
                    step.started_at = self.clock()
                if step.satisfied_at is not None:
                    await self._mark_done(
                        session, view, step, by=step.satisfied_by or "", payload=None
                    )
                    progressed = True
        if view.workflow.status == WorkflowStatus.RUNNING and all(
            s.status == StepStatus.DONE for s in view.steps if s.required
        ):
            now = self.clock()
            for step in view.steps:
                if step.status not in FINISHED_STEP:
                    step.status = StepStatus.SKIPPED
                    step.completed_at = now
            view.workflow.status = WorkflowStatus.COMPLETED
            view.workflow.completed_at = now
            await self.sink.publish(
                session,
                OnboardingCompleted(
                    tenant_id=view.workflow.tenant_id,
                    workflow_id=view.workflow.id,
                    completed_at=now,
                ),
            )
        await session.flush()
